/** A small client for Shelf's own `/api`, used by `shelf admin`. */
export class ShelfApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export class ShelfApi {
  constructor(
    private readonly baseUrl: string,
    private readonly token: string,
  ) {}

  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(new URL(path, this.baseUrl.replace(/\/*$/, '/')), {
        method,
        headers: { authorization: `Bearer ${this.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new ShelfApiError(0, `cannot reach ${this.baseUrl}: ${(err as Error & { cause?: Error }).cause?.message ?? (err as Error).message}`);
    }
    const text = await res.text();
    let json: { data?: T; error?: { message?: string } } = {};
    try {
      json = text ? (JSON.parse(text) as typeof json) : {};
    } catch {
      throw new ShelfApiError(res.status, `${res.status} ${res.statusText}: not a Shelf server answer`);
    }
    if (!res.ok) throw new ShelfApiError(res.status, json.error?.message ?? `${res.status} ${res.statusText}`);
    return json.data as T;
  }
}
