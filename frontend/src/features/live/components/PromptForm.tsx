/**
 * The prompt, how the model reads it (chat or plain completion), the original README's example
 * prompts, sampling settings, Start and Stop.
 */
import { useId, useState } from "react";
import type { FormEvent } from "react";
import type { GenerateInput, GenerateParams, ServerConfig } from "../../../api/types";

/**
 * How the prompt is sent: as one user message, which the generator wraps in the model's chat
 * template (instructions and questions), or as raw text the model continues (completions).
 */
export type PromptMode = "chat" | "complete";

export const PROMPT_MODES: readonly { mode: PromptMode; label: string; hint: string }[] = [
  { mode: "chat", label: "Chat (model's chat template)", hint: "for instructions and questions" },
  { mode: "complete", label: "Complete text", hint: "the model continues the text as written" },
];

export const EXAMPLE_PROMPTS: readonly { label: string; prompt: string; mode: PromptMode }[] = [
  { label: "High certainty (factual)", prompt: "The capital of France is", mode: "complete" },
  { label: "Medium uncertainty (explanatory)", prompt: "Explain quantum computing in simple terms", mode: "chat" },
  { label: "High uncertainty (speculative)", prompt: "What will technology look like in 2090?", mode: "chat" },
  {
    label: "Technical uncertainty (complex reasoning)",
    prompt: "Derive the mathematical relationship between Fisher Information and entropy",
    mode: "chat",
  },
];

/** The POST /generate input for a prompt in a mode: `messages` for chat, `prompt` for completion. */
export function generateInput(prompt: string, mode: PromptMode): GenerateInput {
  return mode === "chat" ? { messages: [{ role: "user", content: prompt }] } : { prompt };
}

interface Props {
  server: ServerConfig;
  running: boolean;
  busy: boolean;
  onStart: (p: GenerateParams) => void;
  onStop: () => void;
  error: string | null;
  /** Shown as one line (the session's prompt, Edit, Stop) so the streaming text is what a user sees. */
  collapsed?: boolean;
  /** The prompt of the session on screen, for the collapsed line. */
  sessionPrompt?: string | null;
  onExpand?: () => void;
}

export function PromptForm({ server, running, busy, onStart, onStop, error, collapsed = false, sessionPrompt, onExpand }: Props) {
  const id = useId();
  const [prompt, setPrompt] = useState("");
  const [mode, setMode] = useState<PromptMode>("chat");
  const [temperature, setTemperature] = useState(0.7);
  const [topP, setTopP] = useState(0.95);
  const [maxTokens, setMaxTokens] = useState(128);
  // The model picked; until one is, the gateway's default.
  const [picked, setModel] = useState<string>("");
  const model = picked || server.default_model || "";
  const [seed, setSeed] = useState("");

  const limit = server.limits.max_tokens;
  const tooLong = prompt.length > server.limits.prompt_chars;
  const badSeed = seed.trim() !== "" && !/^\d{1,15}$/.test(seed.trim());
  const canStart = prompt.trim().length > 0 && !tooLong && !badSeed && !busy && !running;

  const submit = (e?: FormEvent) => {
    e?.preventDefault();
    if (!canStart) return;
    onStart({
      ...generateInput(prompt, mode),
      temperature,
      top_p: topP,
      max_tokens: Math.max(1, Math.min(limit, maxTokens)),
      ...(server.models.length > 1 && model ? { model } : {}),
      ...(seed.trim() !== "" ? { seed: Number(seed) } : {}),
    });
  };

  if (collapsed) {
    // The form's state stays (this component stays mounted): Edit brings it back as it was.
    const shown = sessionPrompt ?? prompt;
    return (
      <div className="prompt-bar panel" data-testid="prompt-bar" aria-label="The session's prompt">
        <span className="label">Prompt</span>
        <span className="prompt-excerpt" title={shown}>
          {shown || "—"}
        </span>
        <button type="button" onClick={onExpand} data-testid="edit-prompt" aria-expanded="false">
          ✎ Edit / new
        </button>
        <button type="button" className="danger" disabled={!running} onClick={onStop} data-testid="stop">
          ■ Stop
        </button>
        {error && (
          <p className="error" role="alert" data-testid="start-error">
            {error}
          </p>
        )}
      </div>
    );
  }

  return (
    <form className="prompt-form panel" onSubmit={submit} aria-label="Start a generation">
      <label htmlFor={`${id}-prompt`} className="label">
        Prompt
      </label>
      <textarea
        id={`${id}-prompt`}
        data-testid="prompt"
        value={prompt}
        rows={3}
        placeholder="Type a prompt, or pick an example below. Ctrl+Enter starts."
        onChange={(e) => setPrompt(e.target.value)}
        onKeyDown={(e) => {
          if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) submit();
        }}
        aria-invalid={tooLong}
        aria-describedby={tooLong ? `${id}-toolong` : undefined}
      />
      {tooLong && (
        <p id={`${id}-toolong`} className="error">
          The prompt is longer than {server.limits.prompt_chars} characters.
        </p>
      )}
      <fieldset className="modes" data-testid="mode">
        <legend className="label">Send as</legend>
        {PROMPT_MODES.map((m) => (
          <label key={m.mode} className="mode" title={m.hint}>
            <input
              type="radio"
              name={`${id}-mode`}
              value={m.mode}
              checked={mode === m.mode}
              onChange={() => setMode(m.mode)}
              aria-labelledby={`${id}-mode-${m.mode}`}
              aria-describedby={`${id}-mode-${m.mode}-hint`}
              data-testid={`mode-${m.mode}`}
            />
            <span id={`${id}-mode-${m.mode}`}>{m.label}</span>
            <span id={`${id}-mode-${m.mode}-hint`} className="mode-hint">
              {m.hint}
            </span>
          </label>
        ))}
      </fieldset>
      <div className="examples" role="group" aria-label="Example prompts">
        {EXAMPLE_PROMPTS.map((ex) => (
          <button
            key={ex.prompt}
            type="button"
            className="chip"
            title={`${ex.label}; sent as ${ex.mode === "chat" ? "chat" : "text to complete"}`}
            onClick={() => {
              setPrompt(ex.prompt);
              setMode(ex.mode);
            }}
          >
            <span className="chip-kind">{ex.label.split(" (")[0]}</span> {ex.prompt}
          </button>
        ))}
      </div>
      <div className="settings">
        <label>
          Temperature <output>{temperature.toFixed(2)}</output>
          <input
            type="range"
            min={0}
            max={2}
            step={0.05}
            value={temperature}
            onChange={(e) => setTemperature(Number(e.target.value))}
            data-testid="temperature"
          />
        </label>
        <label>
          Top-p <output>{topP.toFixed(2)}</output>
          <input
            type="range"
            min={0.05}
            max={1}
            step={0.05}
            value={topP}
            onChange={(e) => setTopP(Number(e.target.value))}
            data-testid="top-p"
          />
        </label>
        <label>
          Max tokens
          <input
            type="number"
            min={1}
            max={limit}
            value={maxTokens}
            onChange={(e) => setMaxTokens(Number(e.target.value) || 1)}
            data-testid="max-tokens"
          />
        </label>
        <label>
          Seed (optional)
          <input
            type="text"
            inputMode="numeric"
            value={seed}
            placeholder="random"
            onChange={(e) => setSeed(e.target.value)}
            aria-invalid={badSeed}
            data-testid="seed"
            className="seed"
          />
        </label>
        {server.models.length > 1 && (
          <label>
            Model
            <select value={model} onChange={(e) => setModel(e.target.value)} data-testid="model">
              {server.models.map((m) => (
                <option key={m} value={m}>
                  {m}
                </option>
              ))}
            </select>
          </label>
        )}
        <div className="actions">
          <button type="submit" className="primary" disabled={!canStart} data-testid="start">
            ▶ Start generation
          </button>
          <button type="button" className="danger" disabled={!running} onClick={onStop} data-testid="stop">
            ■ Stop
          </button>
        </div>
      </div>
      {error && (
        <p className="error" role="alert" data-testid="start-error">
          {error}
        </p>
      )}
    </form>
  );
}
