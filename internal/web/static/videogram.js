// VideoGrams in the browser: record with the camera (or choose a file), watch it
// back, and send it with a resumable upload (tus 1.0) that survives a dropped
// connection. Without this file the form still works: it posts the chosen file.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  for (const form of document.querySelectorAll("form[data-videogram]")) {
    videogramForm(form);
  }
});

function videogramForm(form) {
  const $ = (name) => form.querySelector("[data-" + name + "]");
  const words = form.dataset;
  const limit = Number(words.limit) * 1000;
  const maxBytes = Number(words.maxBytes);
  const fileInput = form.querySelector("input[type=file]");
  const uploadField = form.querySelector("input[name=upload_id]");
  const status = $("status"), progress = $("progress"), send = $("send");
  const recorder = $("recorder"), preview = $("preview"), timer = $("timer");
  const recordButton = $("record"), stopButton = $("stop"), againButton = $("again");

  let clip = null; // the Blob or File to send
  let stream = null, mediaRecorder = null, ticking = null;
  const say = (text) => { status.textContent = text; };
  // Recording or sending is someone at the screen: a kiosk does not sign them out.
  const busy = () => document.dispatchEvent(new Event("kinlink:busy"));
  const seconds = (ms) => {
    const s = Math.floor(ms / 1000);
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  };

  // --- Recording -------------------------------------------------------------
  const canRecord = window.MediaRecorder && navigator.mediaDevices && navigator.mediaDevices.getUserMedia;
  if (canRecord && recorder) {
    recorder.hidden = false;
  }
  const stopCamera = () => {
    if (stream) stream.getTracks().forEach((t) => t.stop());
    stream = null;
  };
  const mimeType = () => {
    for (const t of ["video/webm;codecs=vp8,opus", "video/webm", "video/mp4"]) {
      if (MediaRecorder.isTypeSupported(t)) return t;
    }
    return "";
  };
  const showClip = (blob) => {
    preview.srcObject = null;
    preview.src = URL.createObjectURL(blob);
    preview.muted = false;
    preview.controls = true;
  };

  recordButton && recordButton.addEventListener("click", async () => {
    clip = null;
    if (fileInput) fileInput.value = "";
    send.disabled = true;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 1280 }, height: { ideal: 720 }, facingMode: "user" }, audio: true });
    } catch (e) {
      say(words.noCamera);
      return;
    }
    preview.hidden = false;
    preview.controls = false;
    preview.muted = true; // no echo of the microphone while recording
    preview.srcObject = stream;
    preview.play().catch(() => {});
    recordButton.hidden = true;
    againButton.hidden = true;
    // A short countdown, so the first second is not a reach for the button.
    for (let n = 3; n > 0; n--) {
      timer.textContent = words.startsIn.replace("%d", n);
      await new Promise((done) => setTimeout(done, 1000));
    }
    const chunks = [];
    const type = mimeType();
    mediaRecorder = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
    mediaRecorder.ondataavailable = (e) => { if (e.data.size) chunks.push(e.data); };
    mediaRecorder.onstop = () => {
      clearInterval(ticking);
      stopCamera();
      clip = new Blob(chunks, { type: mediaRecorder.mimeType || "video/webm" });
      showClip(clip);
      timer.textContent = words.recorded;
      stopButton.hidden = true;
      againButton.hidden = false;
      send.disabled = false;
    };
    const started = Date.now();
    mediaRecorder.start(1000);
    stopButton.hidden = false;
    stopButton.focus();
    const tick = () => {
      const passed = Date.now() - started;
      busy();
      timer.textContent = words.recording.replace("%s", seconds(passed)).replace("%s", seconds(limit));
      if (passed >= limit && mediaRecorder.state === "recording") mediaRecorder.stop();
    };
    tick();
    ticking = setInterval(tick, 250);
  });
  stopButton && stopButton.addEventListener("click", () => {
    if (mediaRecorder && mediaRecorder.state === "recording") mediaRecorder.stop();
  });
  againButton && againButton.addEventListener("click", () => {
    againButton.hidden = true;
    recordButton.hidden = false;
    recordButton.click();
  });

  // --- Choosing a file -------------------------------------------------------
  fileInput && fileInput.addEventListener("change", () => {
    const file = fileInput.files[0];
    clip = null;
    if (!file) return;
    if (file.size > maxBytes) {
      say(words.tooLarge);
      fileInput.value = "";
      return;
    }
    stopCamera();
    clip = file;
    if (preview) {
      preview.hidden = false;
      showClip(file);
    }
    say("");
    send.disabled = false;
  });

  // --- Sending ---------------------------------------------------------------
  form.addEventListener("submit", async (event) => {
    if (form.dataset.uploaded === "yes") return; // the upload is done: post the form
    event.preventDefault();
    if (!clip && fileInput && fileInput.files[0]) clip = fileInput.files[0];
    if (!clip) {
      say(words.choose);
      return;
    }
    // A reply the resident pays for from trust money needs their yes first:
    // asked before the upload, not after it is refused.
    const consent = $("consent");
    if (consent && !consent.checked) {
      say(words.consentFirst);
      consent.focus();
      return;
    }
    send.disabled = true;
    progress.hidden = false;
    try {
      uploadField.value = await upload(clip);
    } catch (e) {
      say(e.message || words.failed);
      send.disabled = false;
      return;
    }
    // The bytes went by the resumable upload: the form carries only its id.
    if (fileInput) fileInput.disabled = true;
    form.dataset.uploaded = "yes";
    say(words.sending);
    form.requestSubmit ? form.requestSubmit(send) : form.submit();
  });

  // upload sends a Blob with the tus protocol and returns the upload's id. A
  // dropped connection is retried from where the server says it got to; a file
  // chosen again after the tab was closed resumes its earlier upload.
  async function upload(blob) {
    const remember = blob.name ? "kinlink-upload:" + [blob.name, blob.size, blob.lastModified].join("/") : "";
    let url = remember && localStorage.getItem(remember);
    let offset = url ? await head(url) : -1;
    if (offset < 0) {
      url = await create(blob.size);
      offset = 0;
      if (remember) localStorage.setItem(remember, url);
    }
    for (let attempt = 0; offset < blob.size; ) {
      try {
        offset = await patch(url, blob, offset);
        attempt = 0;
      } catch (e) {
        if (e.final) throw e;
        if (++attempt > 12) throw new Error(words.failed);
        say(words.retrying);
        await new Promise((done) => setTimeout(done, Math.min(30000, 1000 * 2 ** attempt)));
        const at = await head(url).catch(() => -1);
        if (at >= 0) offset = at;
      }
    }
    if (remember) localStorage.removeItem(remember);
    progress.value = 100;
    return url.slice(url.lastIndexOf("/") + 1);
  }

  function request(method, url, headers, body, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open(method, url);
      xhr.setRequestHeader("Tus-Resumable", "1.0.0");
      for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
      if (onProgress) xhr.upload.onprogress = onProgress;
      xhr.onload = () => resolve(xhr);
      xhr.onerror = xhr.ontimeout = () => reject(new Error(words.retrying));
      xhr.send(body);
    });
  }

  async function create(size) {
    const xhr = await request("POST", words.uploads, { "Upload-Length": String(size) });
    if (xhr.status !== 201) {
      const err = new Error(problemText(xhr) || words.failed);
      err.final = true;
      throw err;
    }
    // The page's own origin with the upload's path: the server's public URL may
    // name another (a proxy's, or a demo's) and the upload must stay same-origin.
    return location.origin + new URL(xhr.getResponseHeader("Location"), location.href).pathname;
  }

  async function head(url) {
    const xhr = await request("HEAD", url, {});
    const offset = xhr.getResponseHeader("Upload-Offset");
    // Anything but the upload's own answer (a sign-in page after the session
    // ended, say) is no offset: never start again from 0 as if it were.
    return xhr.status === 200 && offset !== null ? Number(offset) : -1;
  }

  async function patch(url, blob, offset) {
    const xhr = await request("PATCH", url, { "Upload-Offset": String(offset), "Content-Type": "application/offset+octet-stream" },
      blob.slice(offset), (e) => { busy(); progress.value = Math.floor(100 * (offset + e.loaded) / blob.size); });
    if (xhr.status === 204) {
      say(words.uploading);
      return Number(xhr.getResponseHeader("Upload-Offset"));
    }
    const err = new Error(problemText(xhr) || words.failed);
    // A server error (a proxy's timeout, a restart) may mend by retrying, and an
    // offset the server does not have (409) by asking it again; a refusal, a lost
    // upload or a sign-in page after the session ended will not.
    err.final = xhr.status < 500 && xhr.status !== 409;
    throw err;
  }

  function problemText(xhr) {
    try {
      return JSON.parse(xhr.responseText).error.message;
    } catch (e) {
      return "";
    }
  }
}
