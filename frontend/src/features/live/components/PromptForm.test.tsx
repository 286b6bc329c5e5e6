// @vitest-environment jsdom
import { cleanup, fireEvent, render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";
import { DEFAULT_SERVER_CONFIG } from "../../../api/client";
import type { GenerateParams } from "../../../api/types";
import { EXAMPLE_PROMPTS, PromptForm, generateInput } from "./PromptForm";

afterEach(cleanup);

function renderForm() {
  const started: GenerateParams[] = [];
  render(
    <PromptForm
      server={DEFAULT_SERVER_CONFIG}
      running={false}
      busy={false}
      onStart={(p) => started.push(p)}
      onStop={() => undefined}
      error={null}
    />,
  );
  return started;
}

const chatRadio = () => screen.getByRole<HTMLInputElement>("radio", { name: "Chat (model's chat template)" });
const completeRadio = () => screen.getByRole<HTMLInputElement>("radio", { name: "Complete text" });
const type = (text: string) => fireEvent.change(screen.getByTestId("prompt"), { target: { value: text } });
const start = () => fireEvent.click(screen.getByTestId("start"));

describe("generateInput", () => {
  it("sends chat as one user message without a prompt field, and completion as a plain prompt", () => {
    expect(generateInput("Explain AI", "chat")).toStrictEqual({ messages: [{ role: "user", content: "Explain AI" }] });
    expect(generateInput("The capital of France is", "complete")).toStrictEqual({ prompt: "The capital of France is" });
  });
});

describe("PromptForm mode", () => {
  it("offers two labelled modes in one group, chat by default", () => {
    renderForm();
    expect(screen.getByRole("group", { name: "Send as" })).toBeTruthy();
    expect(chatRadio().checked).toBe(true);
    expect(completeRadio().checked).toBe(false);
    expect(chatRadio().getAttribute("aria-describedby")).toBeTruthy();
    expect(document.getElementById(chatRadio().getAttribute("aria-describedby")!)!.textContent).toBe("for instructions and questions");
    // One radio group: both share a name, so arrow keys move between them and Tab enters once.
    expect(chatRadio().name).toBe(completeRadio().name);
  });

  it("sends a typed prompt as chat messages, with no prompt field", () => {
    const started = renderForm();
    type("Explain quantum computing in simple terms");
    start();
    expect(started).toHaveLength(1);
    const body = started[0]!;
    expect(body).not.toHaveProperty("prompt");
    expect(body.messages).toStrictEqual([{ role: "user", content: "Explain quantum computing in simple terms" }]);
    expect(body.max_tokens).toBe(128);
    expect(body.temperature).toBe(0.7);
  });

  it("sends a plain prompt in completion mode, from the keyboard (Ctrl+Enter)", () => {
    const started = renderForm();
    fireEvent.click(completeRadio());
    expect(completeRadio().checked).toBe(true);
    type("Once upon a time");
    fireEvent.keyDown(screen.getByTestId("prompt"), { key: "Enter", ctrlKey: true });
    expect(started).toHaveLength(1);
    expect(started[0]!.prompt).toBe("Once upon a time");
    expect(started[0]).not.toHaveProperty("messages");
  });

  it("sets the mode with each example prompt: the factual one completes, the others chat", () => {
    const started = renderForm();
    const chip = (prompt: string) => screen.getByRole("button", { name: new RegExp(prompt.replace(/[?]/g, "\\?")) });

    fireEvent.click(chip("The capital of France is"));
    expect(completeRadio().checked).toBe(true);
    start();
    expect(started.at(-1)).toMatchObject({ prompt: "The capital of France is" });

    for (const ex of EXAMPLE_PROMPTS.filter((e) => e.prompt !== "The capital of France is")) {
      fireEvent.click(chip(ex.prompt));
      expect(chatRadio().checked).toBe(true);
      start();
      expect(started.at(-1)).toMatchObject({ messages: [{ role: "user", content: ex.prompt }] });
      expect(started.at(-1)).not.toHaveProperty("prompt");
    }
    expect(started).toHaveLength(4);
  });

  it("keeps a mode chosen by hand for the next typed prompt", () => {
    const started = renderForm();
    fireEvent.click(screen.getByRole("button", { name: /Explain quantum computing/ }));
    fireEvent.click(completeRadio());
    type("Explain quantum computing in simple terms, that is");
    start();
    expect(started[0]).toStrictEqual({
      prompt: "Explain quantum computing in simple terms, that is",
      temperature: 0.7,
      top_p: 0.95,
      max_tokens: 128,
    });
  });
});
