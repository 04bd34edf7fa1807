// The reference page's "try it" forms (docs.rs): each calls its route on this host with
// the bearer token typed at the top (kept in this tab's session storage) and shows the
// answer: status, headers and body; an event stream or a followed log as it comes.
"use strict";

const token = document.getElementById("token");
token.value = sessionStorage.getItem("warship-docs-token") || "";
token.addEventListener("change", () => sessionStorage.setItem("warship-docs-token", token.value));

for (const form of document.querySelectorAll("form.try")) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    send(form);
  });
}

function request(form) {
  let path = form.dataset.path;
  const query = new URLSearchParams();
  const headers = {};
  for (const input of form.querySelectorAll("input[data-in]")) {
    const value = input.value;
    if (value === "") continue;
    const name = input.dataset.name;
    if (input.dataset.in === "path") path = path.replace(`{${name}}`, encodeURIComponent(value));
    else if (input.dataset.in === "query") query.append(name, value);
    else if (input.dataset.in === "header") headers[name] = value;
  }
  if (token.value) headers.Authorization = `Bearer ${token.value}`;
  const init = { method: form.dataset.method, headers };
  const text = form.querySelector("textarea[data-body]");
  const file = form.querySelector("input[data-body-file]");
  if (text && text.value.trim() !== "") {
    init.body = text.value;
    headers["Content-Type"] = form.dataset.bodyType;
  } else if (file && file.files.length > 0) {
    if (form.dataset.bodyType === "multipart/form-data") {
      const data = new FormData();
      data.append("file", file.files[0]);
      init.body = data;
    } else {
      init.body = file.files[0];
      headers["Content-Type"] = form.dataset.bodyType;
    }
  }
  const search = query.toString();
  return [search ? `${path}?${search}` : path, init];
}

async function send(form) {
  const output = form.querySelector("output");
  const stop = form.querySelector("button[data-stop]");
  const [url, init] = request(form);
  const controller = new AbortController();
  init.signal = controller.signal;
  stop.hidden = false;
  stop.onclick = () => controller.abort();
  output.textContent = `${init.method} ${url} …`;
  try {
    const response = await fetch(url, init);
    const head = [`${response.status} ${response.statusText}`];
    response.headers.forEach((value, name) => head.push(`${name}: ${value}`));
    output.textContent = head.join("\n") + "\n\n";
    const type = response.headers.get("content-type") || "";
    if (type.includes("json")) {
      const body = await response.text();
      try {
        output.textContent += JSON.stringify(JSON.parse(body), null, 2);
      } catch {
        output.textContent += body;
      }
    } else {
      // Streams (server-sent events, a followed log) show as they arrive.
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        output.textContent += decoder.decode(value, { stream: true });
      }
    }
  } catch (error) {
    output.textContent += `\n${error.name === "AbortError" ? "stopped" : error}`;
  } finally {
    stop.hidden = true;
  }
}
