// Sign-in at an OpenID provider: authorization code with PKCE, for a public client.
// The provider sends the browser back to this page with ?code=...&state=...

const VERIFIER_KEY = "obsrelay.pkceVerifier";
const STATE_KEY = "obsrelay.pkceState";

function base64url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes)))
    .replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "");
}

function randomText() {
  return base64url(crypto.getRandomValues(new Uint8Array(32)));
}

function returnAddress() {
  return `${location.origin}${location.pathname}`;
}

export async function startOidcLogin(oidc) {
  const verifier = randomText();
  const state = randomText();
  sessionStorage.setItem(VERIFIER_KEY, verifier);
  sessionStorage.setItem(STATE_KEY, `${state} ${location.search}`);
  const challenge = base64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  const query = new URLSearchParams({
    response_type: "code",
    client_id: oidc.client_id,
    redirect_uri: returnAddress(),
    scope: oidc.scope,
    state,
    code_challenge: challenge,
    code_challenge_method: "S256",
  });
  if (oidc.audience) query.set("audience", oidc.audience);
  location.assign(`${oidc.authorize_url}?${query}`);
}

// After the provider's redirect: trades the code for an access token; null when
// this page load is not a return from the provider.
export async function finishOidcLogin(oidc) {
  const params = new URLSearchParams(location.search);
  const code = params.get("code");
  if (!code) return null;
  const [expected, search] = (sessionStorage.getItem(STATE_KEY) || " ").split(" ");
  const verifier = sessionStorage.getItem(VERIFIER_KEY);
  sessionStorage.removeItem(STATE_KEY);
  sessionStorage.removeItem(VERIFIER_KEY);
  history.replaceState(null, "", `${location.pathname}${search || ""}`);
  if (!verifier || params.get("state") !== expected) {
    throw new Error("The sign-in did not come back as it was sent; please sign in again.");
  }
  const answer = await fetch(oidc.token_url, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code,
      redirect_uri: returnAddress(),
      client_id: oidc.client_id,
      code_verifier: verifier,
    }),
  });
  const data = await answer.json().catch(() => ({}));
  if (!answer.ok || !data.access_token) {
    throw new Error(data.error_description || "The sign-in provider refused the login.");
  }
  return data.access_token;
}
