// The server's native API, with the signed-in user's token; errors carry the server's sentence.

const TOKEN_KEY = "obsrelay.token";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export class Api {
  get token() {
    return sessionStorage.getItem(TOKEN_KEY);
  }

  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  }

  async request(method, path, body) {
    const headers = {};
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let answer;
    try {
      answer = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      throw new ApiError(0, "The server cannot be reached.");
    }
    const text = await answer.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = text;
    }
    if (!answer.ok) {
      const sentence = (data && data.detail) || (typeof data === "string" && data) ||
        `The server answered ${answer.status}.`;
      throw new ApiError(answer.status, sentence);
    }
    return data;
  }

  get(path) {
    return this.request("GET", path);
  }

  post(path, body) {
    return this.request("POST", path, body ?? {});
  }
}

export function sitePath(site, rest = "") {
  return `/api/v1/sites/${encodeURIComponent(site)}${rest}`;
}
