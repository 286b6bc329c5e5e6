/** The one REST client of the dashboard: typed calls, errors in the gateway's single JSON shape. */
import { parseHistory, parseServerConfig, parseSessionList } from "./parse";
import type { GenerateAccepted, GenerateParams, ServerConfig, SessionHistory, SessionList } from "./types";

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

export interface SessionQuery {
  limit?: number;
  offset?: number;
  status?: string;
  risk?: string;
}

export class ApiClient {
  constructor(
    private readonly base: string = "",
    private readonly apiKey: () => string = () => "",
  ) {}

  private async request(path: string, init?: RequestInit): Promise<unknown> {
    let res: Response;
    try {
      res = await fetch(this.base + path, {
        ...init,
        headers: {
          Accept: "application/json",
          ...(init?.body ? { "Content-Type": "application/json" } : {}),
          ...(this.apiKey() ? { Authorization: `Bearer ${this.apiKey()}` } : {}),
        },
      });
    } catch (e) {
      throw new ApiError(`The gateway is not reachable (${String(e)})`, 0, "network", null);
    }
    const text = await res.text();
    let body: unknown = null;
    if (text) {
      try {
        body = JSON.parse(text);
      } catch {
        body = null;
      }
    }
    if (!res.ok) {
      const err = (body as { error?: { message?: string; type?: string; param?: string | null } } | null)?.error;
      throw new ApiError(
        err?.message ?? `${res.status} ${res.statusText}`,
        res.status,
        err?.type ?? "http_error",
        err?.param ?? null,
      );
    }
    return body;
  }

  async config(): Promise<ServerConfig> {
    return parseServerConfig(await this.request("/config"));
  }

  async generate(params: GenerateParams): Promise<GenerateAccepted> {
    return (await this.request("/generate", { method: "POST", body: JSON.stringify(params) })) as GenerateAccepted;
  }

  async session(id: string): Promise<SessionHistory> {
    return parseHistory(await this.request(`/sessions/${encodeURIComponent(id)}`));
  }

  async sessions(q: SessionQuery = {}): Promise<SessionList> {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== "") params.set(k, String(v));
    const qs = params.toString();
    return parseSessionList(await this.request(`/sessions${qs ? `?${qs}` : ""}`));
  }

  async cancel(id: string): Promise<void> {
    await this.request(`/sessions/${encodeURIComponent(id)}/cancel`, { method: "POST" });
  }
}
