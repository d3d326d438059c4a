// Upload page: one request per file so every file gets its own progress bar; once a file
// is stored, its row follows the document's status through HTMX polling.
(function () {
  "use strict";

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  function humanSize(bytes) {
    const units = ["B", "KB", "MB", "GB"];
    let size = bytes;
    let unit = 0;
    while (size >= 1024 && unit < units.length - 1) {
      size /= 1024;
      unit += 1;
    }
    return unit === 0 ? size + " B" : size.toFixed(1) + " " + units[unit];
  }

  function addRow(list, template, file) {
    const row = template.content.firstElementChild.cloneNode(true);
    row.querySelector(".upload-name").textContent = file.name;
    row.querySelector(".upload-size").textContent = humanSize(file.size);
    row.querySelector("progress").setAttribute("aria-label", "Uploading " + file.name);
    list.prepend(row);
    return row;
  }

  function showError(row, message) {
    const status = row.querySelector(".upload-state");
    status.innerHTML = "";
    const badge = document.createElement("span");
    badge.className = "badge badge-failed";
    badge.textContent = "failed";
    const reason = document.createElement("span");
    reason.className = "reason";
    reason.textContent = " " + message;
    status.append(badge, reason);
    row.querySelector("progress").remove();
    row.dataset.state = "failed";
  }

  function follow(row, doc) {
    const name = row.querySelector(".upload-name");
    const link = document.createElement("a");
    link.href = "/documents/" + doc.id;
    link.textContent = name.textContent;
    name.replaceChildren(link);
    row.querySelector("progress").remove();
    row.dataset.documentId = doc.id;
    const status = row.querySelector(".upload-state");
    const poller = document.createElement("span");
    poller.setAttribute("hx-get", "/documents/" + doc.id + "/status");
    poller.setAttribute("hx-trigger", "load");
    poller.setAttribute("hx-swap", "outerHTML");
    poller.textContent = doc.duplicate ? "Already uploaded" : "Uploaded";
    status.replaceChildren(poller);
    window.htmx.process(poller);
  }

  function upload(file, list, template) {
    const row = addRow(list, template, file);
    const progress = row.querySelector("progress");
    const state = row.querySelector(".upload-state");
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/documents");
    xhr.setRequestHeader("X-CSRF-Token", csrfToken());
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", function (event) {
      if (!event.lengthComputable) return;
      const percent = Math.round((event.loaded / event.total) * 100);
      progress.value = percent;
      state.textContent =
        percent < 100 ? "Uploading… " + percent + " %" : "Uploaded; checking the file…";
    });
    xhr.addEventListener("load", function () {
      let body = {};
      try {
        body = JSON.parse(xhr.responseText);
      } catch (_error) {
        body = {};
      }
      if (Array.isArray(body)) body = body[0] || {};
      if (xhr.status >= 200 && xhr.status < 300 && body.id !== undefined) {
        follow(row, body);
      } else {
        showError(row, body.detail || "The upload failed (HTTP " + xhr.status + ").");
      }
    });
    xhr.addEventListener("error", function () {
      showError(row, "The upload did not reach the server. Check your connection and try again.");
    });
    const data = new FormData();
    data.append("file", file, file.name);
    xhr.send(data);
  }

  function setUp(form) {
    const input = form.querySelector('input[type="file"]');
    const zone = form.querySelector(".dropzone");
    const list = document.getElementById("upload-list");
    const template = document.getElementById("upload-row");
    const start = function (files) {
      Array.from(files).forEach(function (file) {
        upload(file, list, template);
      });
    };
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      start(input.files);
      input.value = "";
    });
    input.addEventListener("change", function () {
      start(input.files);
      input.value = "";
    });
    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (event) {
        event.preventDefault();
        zone.classList.add("dragover");
      });
    });
    ["dragleave", "drop"].forEach(function (name) {
      zone.addEventListener(name, function () {
        zone.classList.remove("dragover");
      });
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      if (event.dataTransfer && event.dataTransfer.files.length) start(event.dataTransfer.files);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    const form = document.getElementById("upload-form");
    if (form) setUp(form);
    // After a refused form, start where the first problem is.
    const invalid = document.querySelector('[aria-invalid="true"]');
    if (invalid) invalid.focus();
  });
})();
