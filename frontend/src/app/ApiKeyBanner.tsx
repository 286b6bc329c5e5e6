/** Shown when the gateway requires an API key: enter it once, it is kept in this browser. */
import { useState } from "react";
import { getApiKey, setApiKey } from "../lib/apiKey";
import { useServerConfig, useServices } from "./services";

export function ApiKeyBanner() {
  const { config } = useServerConfig();
  const { socket } = useServices();
  const [saved, setSaved] = useState(getApiKey());
  const [draft, setDraft] = useState("");
  if (!config.auth_required || saved) return null;
  return (
    <form
      className="banner"
      onSubmit={(e) => {
        e.preventDefault();
        setApiKey(draft.trim());
        setSaved(draft.trim());
        socket.reconnectNow();
      }}
    >
      <label>
        This gateway requires an API key{" "}
        <input type="password" value={draft} onChange={(e) => setDraft(e.target.value)} autoComplete="off" />
      </label>{" "}
      <button type="submit" disabled={!draft.trim()}>
        Use key
      </button>
    </form>
  );
}
