// stepup.js: step up in a popup, then retry the request. docs/forms-and-spas.md
const challenged = (r) => r.status == 401 &&
  /insufficient_user_authentication/.test(r.headers.get("WWW-Authenticate"));

// The popup posts here, or on a BroadcastChannel if COOP cut its opener.
function wait(popup, ref) {
  return new Promise((resolve, reject) => {
    let bc, shut = 0;
    const end = (fn, v) => (clearInterval(t), removeEventListener("message", onMessage), bc && bc.close(), fn(v));
    const settle = (m) => {
      if (!m || m.ref !== ref) return;
      if (m.type == "stepup:granted") end(resolve, m);
      if (m.type == "stepup:denied") end(reject, Object.assign(Error("step-up denied: " + m.reason), m));
    };
    const onMessage = (e) => e.source == popup && e.origin == location.origin && settle(e.data);
    addEventListener("message", onMessage);
    try {
      bc = new BroadcastChannel("stepup");
      bc.onmessage = (e) => settle(e.data);
    } catch {}
    const t = setInterval(() => {
      shut = popup.closed ? shut + 1 : 0;
      if (shut > 1) end(reject, Error("step-up window was closed"));
    }, 300);
  });
}

// fetch; on an RFC 9470 401 it steps up in a popup opened during the click and
// retries once. A blocked popup falls back to the full-page step-up.
export async function stepupFetch(input, init) {
  const req = new Request(input, init);
  const again = req.clone();
  const popup = open("about:blank", "stepup", "popup,width=520,height=700");
  const res = await fetch(req);
  const close = () => (popup && popup.close(), res);
  if (!challenged(res)) return close();
  const url = await res.clone().json().then((b) => new URL(b.step_up_url, location.href)).catch(() => 0);
  if (url.origin != location.origin) return close();
  if (!popup || popup.closed) {
    location.assign(url);
    return new Promise(() => {});
  }
  const ref = crypto.randomUUID();
  url.searchParams.set("display", "popup");
  url.searchParams.set("ref", ref);
  popup.location.href = url.href;
  await wait(popup, ref);
  return fetch(again);
}

// Submits form by stepupFetch; on failure input stays, [data-stepup-error] says why.
export function stepupForm(form) {
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const data = new FormData(form, e.submitter);
    const method = form.method.toUpperCase();
    const init = { method, headers: { Accept: "text/html" } };
    const url = new URL(form.action);
    if (method == "GET") url.search = new URLSearchParams(data);
    else init.body = form.enctype == "multipart/form-data" ? data : new URLSearchParams(data);
    let res;
    try {
      res = await stepupFetch(url, init);
    } catch (err) {
      const shown = form.querySelector("[data-stepup-error]");
      if (shown) shown.textContent = err.message;
      return form.dispatchEvent(new CustomEvent("stepup:error", { detail: err }));
    }
    if (res.redirected) return location.assign(res.url);
    const html = await res.text();
    document.open(), document.write(html), document.close();
  });
}
