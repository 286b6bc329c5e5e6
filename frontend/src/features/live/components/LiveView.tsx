/** The live page: start a generation and watch it; #/live/<id> follows that session (reload-safe). */
import { Fragment, useState } from "react";
import { navigate } from "../../../app/router";
import { useServerConfig, useServices } from "../../../app/services";
import type { GenerateParams } from "../../../api/types";
import { useSessionFeed } from "../../../shared/session/api/useSessionFeed";
import type { RenderSession } from "../../../shared/session/components/SessionView";
import { useStoreVersion } from "../../../shared/session/store/useStore";
import { PromptForm } from "./PromptForm";

export function LiveView({ sessionId, renderSession }: { sessionId: string | null; renderSession: RenderSession }) {
  const { api, socket } = useServices();
  const { config } = useServerConfig();
  const store = useSessionFeed(sessionId);
  useStoreVersion(store);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const running = store !== null && !store.terminal;

  const start = async (p: GenerateParams) => {
    setBusy(true);
    setError(null);
    try {
      const accepted = await api.generate(p);
      navigate({ page: "live", sessionId: accepted.session_id });
    } catch (e) {
      setError(`Could not start: ${e instanceof Error ? e.message : String(e)}`);
    } finally {
      setBusy(false);
    }
  };

  const stop = async () => {
    if (!store) return;
    try {
      await api.cancel(store.sessionId);
    } catch (e) {
      // The REST call failed; the socket may still get through.
      if (!socket.send({ type: "cancel", session_id: store.sessionId })) {
        setError(`Could not stop: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  };

  return (
    <div className="live">
      <PromptForm server={config} running={running} busy={busy} onStart={start} onStop={stop} error={error} />
      {store ? (
        <Fragment key={store.sessionId}>{renderSession(store)}</Fragment>
      ) : (
        <p className="empty hint">Start a generation to watch its uncertainty token by token.</p>
      )}
    </div>
  );
}
