// warship console: progressive enhancement only. Every page works without this file;
// with it, timestamps show in local time, live parts update over EventSource, WAR
// uploads show their progress, and destructive buttons ask first.
"use strict";

(function () {
  const csrf = () => (document.querySelector('input[name="csrf"]') || {}).value || "";

  // Timestamps: <time datetime data-local> rendered in UTC by the server.
  function localTimes(root) {
    root.querySelectorAll("time[data-local]").forEach((el) => {
      const at = new Date(el.getAttribute("datetime"));
      if (isNaN(at)) return;
      if (!el.title) el.title = el.textContent;
      el.textContent = at.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
    });
  }

  // Confirmations: buttons with data-confirm ask before their form is sent.
  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-confirm]");
    if (button && !window.confirm(button.getAttribute("data-confirm"))) event.preventDefault();
  });

  // Live parts: an element's data-live is an event stream of fragments, lines or end.
  function applyFragments(message) {
    const html = message.html || {};
    Object.keys(html).forEach((id) => {
      const el = document.getElementById(id);
      if (el && el.innerHTML !== html[id]) {
        el.innerHTML = html[id];
        localTimes(el);
      }
    });
    const attrs = message.attrs || {};
    Object.keys(attrs).forEach((id) => {
      const el = document.getElementById(id);
      if (el) Object.keys(attrs[id]).forEach((name) => el.setAttribute(name, attrs[id][name]));
    });
  }

  function follow(el) {
    const source = new EventSource(el.getAttribute("data-live"));
    source.addEventListener("fragments", (e) => {
      try { applyFragments(JSON.parse(e.data)); } catch (err) { console.warn("bad fragment", err); }
    });
    source.addEventListener("line", (e) => {
      const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
      el.appendChild(document.createTextNode(e.data));
      if (atBottom) el.scrollTop = el.scrollHeight;
    });
    source.addEventListener("end", () => source.close());
    // Signed out (in another tab, or the session expired): to the login form, and back here after.
    source.addEventListener("signed-out", () => {
      source.close();
      const main = document.getElementById("main");
      if (main && !document.getElementById("signed-out")) {
        const notice = document.createElement("p");
        notice.id = "signed-out";
        notice.className = "notice";
        notice.setAttribute("role", "status");
        notice.textContent = "Your session ended; going to the sign-in page…";
        main.prepend(notice);
      }
      const back = encodeURIComponent(window.location.pathname + window.location.search);
      window.setTimeout(() => window.location.assign("/ui/login?expired=1&next=" + back), 1500);
    });
    // A stream the server refused (its session gone while the page was away, the env
    // deleted): the page itself says what now.
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) window.setTimeout(() => window.location.reload(), 2000);
    });
    window.addEventListener("pagehide", () => source.close());
  }

  // The deploy form: only the chosen strategy's settings are shown and sent.
  function strategySettings() {
    const select = document.getElementById("deploy-strategy");
    if (!select) return;
    const show = () => {
      document.querySelectorAll("fieldset.strategy-settings").forEach((fs) => {
        const chosen = fs.getAttribute("data-strategy") === select.value;
        fs.hidden = !chosen;
        fs.disabled = !chosen;
      });
    };
    select.addEventListener("change", show);
    show();
  }

  // WAR upload: the raw body by XHR, so the page can show bytes and rate.
  function upload() {
    const form = document.getElementById("upload-form");
    if (!form) return;
    const app = document.getElementById("upload-app");
    const file = document.getElementById("upload-file");
    const war = document.getElementById("upload-war");
    const bar = document.getElementById("upload-progress");
    const status = document.getElementById("upload-status");
    const summary = document.getElementById("form-errors");
    const button = form.querySelector('button[type="submit"]');
    const size = (n) => {
      const units = ["B", "KiB", "MiB", "GiB"];
      let i = 0;
      while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
      return (i ? n.toFixed(1) : n) + " " + units[i];
    };
    const fieldError = (name, message) => {
      const el = document.getElementById("upload-" + name + "-error");
      const input = document.getElementById("upload-" + name);
      if (el) el.textContent = message || "";
      if (input) {
        if (message) input.setAttribute("aria-invalid", "true");
        else input.removeAttribute("aria-invalid");
      }
    };
    const showSummary = (messages) => {
      summary.innerHTML = "";
      if (!messages.length) { summary.hidden = true; return; }
      const p = document.createElement("p");
      p.textContent = messages.join(" ");
      summary.appendChild(p);
      summary.hidden = false;
    };
    war.addEventListener("change", () => {
      const chosen = war.files[0];
      if (chosen && !app.value) {
        app.value = chosen.name.replace(/\.war$/i, "").replace(/[-_.]?v?\d.*$/, "").toLowerCase().replace(/[^a-z0-9-]/g, "-");
      }
    });
    form.addEventListener("submit", (event) => {
      const chosen = war.files[0];
      if (!chosen) return; // the browser's own check, or the server's, says what is missing
      event.preventDefault();
      ["app", "file", "war"].forEach((n) => fieldError(n, ""));
      showSummary([]);
      const name = file.value.trim() || chosen.name;
      const xhr = new XMLHttpRequest();
      const started = performance.now();
      xhr.open("PUT", "/ui/wars/" + encodeURIComponent(app.value.trim()) + "/" + encodeURIComponent(name));
      xhr.setRequestHeader("X-CSRF-Token", csrf());
      xhr.setRequestHeader("Content-Type", "application/octet-stream");
      xhr.setRequestHeader("Accept", "application/json");
      bar.max = chosen.size || 1;
      bar.value = 0;
      button.disabled = true;
      xhr.upload.addEventListener("progress", (e) => {
        const seconds = (performance.now() - started) / 1000;
        bar.value = e.loaded;
        status.textContent = size(e.loaded) + " of " + size(e.total || chosen.size) +
          (seconds > 0.2 ? ", " + size(e.loaded / seconds) + "/s" : "");
      });
      xhr.addEventListener("load", () => {
        button.disabled = false;
        let answer = {};
        try { answer = JSON.parse(xhr.responseText); } catch (err) { answer = {}; }
        if (xhr.status === 200 || xhr.status === 201) {
          status.textContent = "Stored; inspecting done.";
          window.location.assign(answer.location || "/ui/wars");
          return;
        }
        if (xhr.status === 401) { window.location.assign("/ui/login?expired=1&next=/ui/wars"); return; }
        const general = [];
        (answer.errors || []).forEach((v) => {
          if (v.field === "app" || v.field === "file") fieldError(v.field, v.message);
          else general.push(v.message);
        });
        if (!(answer.errors || []).length) fieldError("war", answer.detail || "The upload failed (" + xhr.status + ").");
        showSummary(general.length ? general : [answer.title || "Not uploaded."]);
        status.textContent = "Not uploaded.";
      });
      xhr.addEventListener("error", () => {
        button.disabled = false;
        status.textContent = "The connection broke; nothing was kept. Send it again.";
      });
      xhr.send(chosen);
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    localTimes(document);
    document.querySelectorAll("[data-live]").forEach(follow);
    strategySettings();
    upload();
  });
})();
