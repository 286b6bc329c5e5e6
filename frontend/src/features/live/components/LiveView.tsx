/** The live page: start a generation and watch it; #/live/<id> follows that session (reload-safe). */
import { Fragment, useState } from "react";
import { navigate } from "../../../app/router";
import { useServerConfig, useServices } from "../../../app/services";
import type { GenerateParams } from "../../../api/types";
import { useGenerate } from "../api/useGenerate";
import { useSessionFeed } from "../../../shared/session/api/useSessionFeed";
import type { RenderSession } from "../../../shared/session/components/SessionView";
import { useStoreVersion } from "../../../shared/session/store/useStore";
import { PromptForm } from "./PromptForm";

export function LiveView({ sessionId, renderSession }: { sessionId: string | null; renderSession: RenderSession }) {
  const { api, socket } = useServices();
  const { config } = useServerConfig();
  const store = useSessionFeed(sessionId);
  useStoreVersion(store);
  const [stopError, setError] = useState<string | null>(null);
  // The form collapses to one line while a session is on screen, until Edit opens it for that session.
  const [openFor, setOpenFor] = useState<string | null>(null);
  const collapsed = sessionId !== null && openFor !== sessionId;
  const generate = useGenerate((id) => navigate({ page: "live", sessionId: id }));
  const running = store !== null && !store.terminal;
  const startError = generate.error
    ? `Could not start: ${generate.error instanceof Error ? generate.error.message : String(generate.error)}`
    : null;

  const start = (p: GenerateParams) => {
    setError(null);
    generate.mutate(p);
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
      <PromptForm
        server={config}
        running={running}
        busy={generate.isPending}
        onStart={start}
        onStop={stop}
        error={stopError ?? startError}
        collapsed={collapsed}
        sessionPrompt={store?.prompt ?? null}
        onExpand={() => setOpenFor(sessionId)}
      />
      {store ? (
        <Fragment key={store.sessionId}>{renderSession(store)}</Fragment>
      ) : (
        <p className="empty hint">Start a generation to watch its uncertainty token by token.</p>
      )}
    </div>
  );
}
