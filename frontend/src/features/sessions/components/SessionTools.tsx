/** One session's export and link buttons, for its own page (the list has the same in each row's menu). */
import { useState } from "react";
import type { ExportFormat } from "../../../api/client";
import { absoluteHref } from "../../../app/router";
import { copyText } from "../../../lib/clipboard";
import { useExportSession } from "../api/useSessionActions";

export function SessionTools({ sessionId }: { sessionId: string }) {
  const exporter = useExportSession();
  const [status, setStatus] = useState<string | null>(null);
  const download = (format: ExportFormat) =>
    exporter.mutate({ id: sessionId, format }, { onError: (e) => setStatus(`Export failed: ${e instanceof Error ? e.message : String(e)}`) });
  const copyLink = async () => {
    const ok = await copyText(absoluteHref({ page: "sessions", sessionId }));
    setStatus(ok ? "link copied" : "the browser refused the clipboard");
  };
  return (
    <div className="replay-controls" role="group" aria-label="This session">
      <button type="button" onClick={() => download("jsonl")} data-testid="session-export-jsonl">
        Export JSONL
      </button>
      <button type="button" onClick={() => download("csv")} data-testid="session-export-csv">
        Export CSV
      </button>
      <button type="button" onClick={() => void copyLink()} data-testid="session-copy-link">
        Copy link
      </button>
      {status && (
        <span className="meta" role="status">
          {status}
        </span>
      )}
    </div>
  );
}
