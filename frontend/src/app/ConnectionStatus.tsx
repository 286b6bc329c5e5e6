/** The WebSocket's state, in words and with a glyph; a retry button while it is down. */
import { useEffect, useState } from "react";
import { useConnection, useServices } from "./services";

export function ConnectionStatus() {
  const info = useConnection();
  const { socket } = useServices();
  // The clock, read four times a second while counting down to the next attempt.
  const [now, setNow] = useState(Date.now);
  useEffect(() => {
    if (info.state !== "reconnecting") return;
    const tick = () => setNow(Date.now());
    const first = setTimeout(tick, 0);
    const t = setInterval(tick, 250);
    return () => {
      clearTimeout(first);
      clearInterval(t);
    };
  }, [info.state, info.retryAt]);

  let text: string;
  let glyph: string;
  switch (info.state) {
    case "open":
      text = "Live";
      glyph = "●";
      break;
    case "connecting":
    case "idle":
      text = "Connecting…";
      glyph = "◌";
      break;
    case "reconnecting": {
      const s = info.retryAt ? Math.max(0, Math.ceil((info.retryAt - now) / 1000)) : 0;
      text = info.retryAt && s > 0 ? `Disconnected — retrying in ${s} s (attempt ${info.attempt})` : "Reconnecting…";
      glyph = "✕";
      break;
    }
    case "closed":
      text = "Offline";
      glyph = "✕";
      break;
  }
  return (
    <div
      className={`conn conn-${info.state}`}
      role="status"
      aria-live="polite"
      data-testid="connection"
      data-state={info.state}
      data-bad-frames={info.badFrames}
    >
      <span aria-hidden="true">{glyph}</span> {text}
      {info.state === "reconnecting" && (
        <button type="button" className="link" onClick={() => socket.reconnectNow()}>
          Retry now
        </button>
      )}
    </div>
  );
}
