/**
 * The one REST client of the dashboard: typed calls over the gateway's OpenAPI schema
 * (openapi-fetch over schema.gen.ts: a path, its parameters and its body are checked at compile
 * time), every answer checked at run time before it is returned, errors in the gateway's single
 * JSON shape. Caching and polling are TanStack Query's (queries.ts); this module only fetches.
 */
import createClient, { type Client } from "openapi-fetch";
import type { paths } from "./schema.gen";
import type { GenerateAccepted, GenerateParams, ServerConfig, SessionHistory, SessionList } from "./types";
import { checked } from "./validate";
import { validateConfig, validateGenerateResponse, validateSessionDetail, validateSessionList } from "./validators.gen";

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly type: string,
    readonly param: string | null,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** GET /sessions filters; "" = any. */
export interface SessionQuery {
  limit?: number;
  offset?: number;
  status?: string;
  risk?: string;
  /** Case-insensitive substring of the prompt. */
  q?: string;
  model?: string;
  /** The lowest peak risk level kept. */
  peak?: string;
  /** Created at or after / before, ns since the epoch. */
  since_ns?: number;
  until_ns?: number;
  sort?: SessionSort;
  order?: "asc" | "desc";
}

export type SessionSort = "created" | "updated" | "tokens" | "alerts" | "peak" | "risk" | "status" | "model";
export type ExportFormat = "jsonl" | "csv";

/** What the dashboard assumes until GET /config answers (the gateway's defaults). */
export const DEFAULT_SERVER_CONFIG: ServerConfig = {
  models: [],
  default_model: "",
  thresholds: { hbar_s: 2.5, prob: 0.3, source: "defaults" },
  limits: { max_tokens: 2048, prompt_chars: 20_000, push_batch: 1000 },
  auth_required: false,
  calibration: {},
};

type GenerateBody = paths["/generate"]["post"]["requestBody"]["content"]["application/json"];
type Fetched = { data?: unknown; error?: unknown; response: Response };

export class ApiClient {
  private readonly http: Client<paths>;

  constructor(
    base: string = "",
    apiKey: () => string = () => "",
  ) {
    this.http = createClient<paths>({ baseUrl: base, headers: { Accept: "application/json" } });
    // Asked on every request, so a key entered later takes effect at once.
    this.http.use({
      onRequest({ request }) {
        const key = apiKey();
        if (key) request.headers.set("Authorization", `Bearer ${key}`);
        return request;
      },
    });
  }

  /** The answer's body, or an ApiError: the gateway's `{"error": {...}}`, an HTTP status, or no gateway. */
  private async body(call: Promise<Fetched>): Promise<unknown> {
    let res: Fetched;
    try {
      res = await call;
    } catch (e) {
      throw new ApiError(`The gateway is not reachable (${String(e)})`, 0, "network", null);
    }
    if (!res.response.ok) {
      const err = (res.error as { error?: { message?: string; type?: string; param?: string | null } } | undefined)?.error;
      throw new ApiError(
        err?.message ?? `${res.response.status} ${res.response.statusText}`,
        res.response.status,
        err?.type ?? "http_error",
        err?.param ?? null,
      );
    }
    return res.data ?? null;
  }

  async config(): Promise<ServerConfig> {
    return checked(validateConfig, await this.body(this.http.GET("/config")), "GET /config");
  }

  async generate(params: GenerateParams): Promise<GenerateAccepted> {
    // The schema's types mark defaulted fields as present (they are, in answers); in a request
    // the gateway fills them in, so the body may leave them out.
    const body: Partial<GenerateBody> = params;
    const answer = await this.body(this.http.POST("/generate", { body: body as GenerateBody }));
    return checked(validateGenerateResponse, answer, "POST /generate");
  }

  async session(id: string): Promise<SessionHistory> {
    const answer = await this.body(this.http.GET("/sessions/{session_id}", { params: { path: { session_id: id } } }));
    return checked(validateSessionDetail, answer, "GET /sessions/{id}");
  }

  async sessions(q: SessionQuery = {}): Promise<SessionList> {
    const query: Record<string, string | number> = {};
    for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== "") query[k] = v;
    return checked(validateSessionList, await this.body(this.http.GET("/sessions", { params: { query } })), "GET /sessions");
  }

  /** Forget a session's audit trail (DELETE /sessions/{id}). */
  async deleteSession(id: string): Promise<void> {
    await this.body(this.http.DELETE("/sessions/{session_id}", { params: { path: { session_id: id } }, parseAs: "text" }));
  }

  /** A session's audit trail as a file (fetched, not linked: the API key goes in a header). */
  async exportSession(id: string, format: ExportFormat): Promise<Blob> {
    const answer = await this.body(
      this.http.GET("/sessions/{session_id}/export", {
        params: { path: { session_id: id }, query: { format } },
        parseAs: "blob",
      }),
    );
    if (!(answer instanceof Blob)) throw new ApiError("The export came back empty", 0, "http_error", null);
    return answer;
  }

  async cancel(id: string): Promise<void> {
    await this.body(this.http.POST("/sessions/{session_id}/cancel", { params: { path: { session_id: id } } }));
  }
}
