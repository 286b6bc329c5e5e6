import { useMutation, useQueryClient } from "@tanstack/react-query";
import { queryKeys } from "../../../api/queryKeys";
import type { GenerateParams } from "../../../api/types";
import { useServices } from "../../../app/services";

/** POST /generate; the sessions list is refetched once a job is queued. */
export function useGenerate(onQueued: (sessionId: string) => void) {
  const { api } = useServices();
  const client = useQueryClient();
  return useMutation({
    mutationFn: (p: GenerateParams) => api.generate(p),
    onSuccess: (accepted) => {
      void client.invalidateQueries({ queryKey: queryKeys.allSessions });
      onQueued(accepted.session_id);
    },
  });
}
