import { useMutation, useQueryClient } from "@tanstack/react-query";
import type { ExportFormat } from "../../../api/client";
import { queryKeys } from "../../../api/queryKeys";
import { useServices } from "../../../app/services";
import { saveBlob } from "../../../lib/clipboard";

/** DELETE /sessions/{id}; the lists refetch and the session's cached detail is dropped. */
export function useDeleteSession() {
  const { api } = useServices();
  const client = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => api.deleteSession(id),
    onSuccess: (_, id) => {
      client.removeQueries({ queryKey: queryKeys.session(id) });
      void client.invalidateQueries({ queryKey: queryKeys.allSessions });
    },
  });
}

/** GET /sessions/{id}/export, saved as `<id>.<format>` (fetched with the API key, then downloaded). */
export function useExportSession() {
  const { api } = useServices();
  return useMutation({
    mutationFn: async ({ id, format }: { id: string; format: ExportFormat }) => {
      saveBlob(await api.exportSession(id, format), `${id}.${format}`);
    },
  });
}
