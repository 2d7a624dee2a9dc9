// Kinlink's small progressive enhancements. Every page works without this file.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Show/hide buttons for password fields.
  for (const button of document.querySelectorAll("button.toggle-password")) {
    const input = document.getElementById(button.dataset.target);
    if (!input) continue;
    button.hidden = false;
    button.addEventListener("click", () => {
      const show = input.type === "password";
      input.type = show ? "text" : "password";
      button.textContent = show ? button.dataset.hide : button.dataset.show;
      button.setAttribute("aria-pressed", String(show));
    });
  }

  // A live, plain-words length hint under new-password fields.
  for (const hint of document.querySelectorAll("[data-password-hint]")) {
    const input = document.getElementById(hint.dataset.for);
    const min = Number(hint.dataset.min);
    if (!input || !min) continue;
    const original = hint.textContent;
    hint.setAttribute("aria-live", "polite");
    const update = () => {
      const length = [...input.value.normalize("NFKC")].length;
      if (length === 0) {
        hint.textContent = original;
      } else if (length < min) {
        hint.textContent = (min - length) + " " + hint.dataset.more;
      } else {
        hint.textContent = hint.dataset.enough;
      }
    };
    input.addEventListener("input", update);
  }
});

// On a kiosk, sign the resident out after the idle limit, so nothing of their
// session stays on screen for the next person. The server ends it too. The last
// 30 seconds (half of a limit shorter than a minute) are counted down in a dialog
// over the page, with an "I'm still here" button; any touch or key counts too. A
// resident who reads or writes without loading a page tells the server now and then
// (POST /kiosk/alive), so that its own limit does not end the session first.
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("kiosk-logout-form");
  if (!form) return;
  const limit = Number(form.dataset.idleSeconds) * 1000;
  const warnFor = Math.min(30000, limit / 2);
  const dialog = document.getElementById("idle-warning");
  const count = document.getElementById("idle-count");
  const text = document.getElementById("idle-text");
  let last = Date.now(); // the page was loaded: the server saw the resident then
  let told = last;
  let leaving = false;
  let before = null; // what had focus before the countdown
  const signOut = () => {
    if (leaving) return;
    leaving = true;
    form.submit();
  };
  const alive = () => {
    told = Date.now();
    fetch("/kiosk/alive", { method: "POST", credentials: "same-origin", cache: "no-store" })
      .then((res) => { if (res.status === 401) signOut(); })
      .catch(() => {}); // offline for a moment: the next touch tells it
  };
  const hide = () => {
    if (!dialog?.open) return;
    dialog.close();
    before?.focus?.();
    before = null;
  };
  // The countdown is answered by its button, a tap anywhere on or around it, or
  // Escape; the server is told at once. It closes on the click that ends a tap, not
  // on the touch that starts it, so that the tap does not land on the page under it.
  const answer = () => {
    last = Date.now();
    hide();
    alive();
  };
  const active = (e) => {
    if (leaving) return;
    if (dialog?.open && e.key === "Escape") return answer();
    last = Date.now();
    // Other touches tell the server often enough that its last sight of the
    // resident is well within the countdown, so an answer never finds the session
    // ended.
    if (!dialog?.open && last - told > warnFor / 3) alive();
  };
  const tick = () => {
    const left = limit - (Date.now() - last);
    if (left <= 0) return signOut();
    if (!dialog || left > warnFor) return;
    const seconds = String(Math.ceil(left / 1000));
    if (count.textContent !== seconds) {
      count.textContent = seconds;
      text.textContent = (seconds === "1" ? text.dataset.saysSingle : text.dataset.says).replace("%d", seconds);
    }
    if (!dialog.open) {
      before = document.activeElement;
      dialog.showModal(); // above a photo shown full screen, too
    }
  };
  // Only a person counts: not "scroll", which new messages cause by themselves.
  // A resident recording or sending a VideoGram reply is at the screen too, without
  // touching it (videogram.js says so).
  for (const event of ["pointerdown", "keydown", "touchstart", "wheel", "kinlink:busy"]) {
    document.addEventListener(event, active, { passive: true, capture: true });
  }
  dialog?.addEventListener("click", answer);
  dialog?.addEventListener("cancel", (e) => { e.preventDefault(); answer(); }); // Escape
  setInterval(tick, 250);
});

// A photo of a kiosk conversation opens full screen over the page when tapped, and
// closes with its large button or Escape. (Its link leads to a page of its own
// without this script; that page goes back with Escape too.)
document.addEventListener("DOMContentLoaded", () => {
  const viewer = document.getElementById("photo-viewer");
  const full = document.getElementById("photo-viewer-img");
  if (viewer && full) {
    document.addEventListener("click", (e) => {
      const link = e.target.closest?.("a.photo-open");
      if (!link || e.ctrlKey || e.metaKey || e.shiftKey) return;
      e.preventDefault();
      const thumb = link.querySelector("img");
      full.src = link.dataset.photo;
      full.alt = thumb?.alt || "";
      if (thumb?.alt) viewer.setAttribute("aria-label", thumb.alt);
      viewer.showModal();
    });
    document.getElementById("photo-viewer-close").addEventListener("click", () => viewer.close());
    // Closing gives focus back to the photo's link (the browser's own return).
    viewer.addEventListener("close", () => { full.src = "data:,"; });
  }
  const back = document.querySelector("a[data-escape-to]");
  if (back) {
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape") location.href = back.href;
    });
  }
});

// A tapped VideoGram at the kiosk plays in a dialog over the thread, full screen.
// The server marks it watched when the clip is loaded, here or (without this
// script) on the page its link leads to.
document.addEventListener("DOMContentLoaded", () => {
  const viewer = document.getElementById("video-viewer");
  const video = document.getElementById("video-viewer-video");
  if (!viewer || !video) return;
  document.addEventListener("click", (e) => {
    const link = e.target.closest?.("a.videogram-open");
    if (!link || e.ctrlKey || e.metaKey || e.shiftKey) return;
    e.preventDefault();
    video.poster = link.querySelector("img")?.src || "";
    video.src = link.dataset.video;
    viewer.showModal();
    video.play().catch(() => {}); // a kiosk may refuse autoplay: the controls are there
  });
  document.getElementById("video-viewer-close").addEventListener("click", () => viewer.close());
  viewer.addEventListener("close", () => {
    video.pause();
    video.removeAttribute("src");
    video.load();
  });
});

// A kiosk paused after too many wrong PINs shows its sign-in page again when the
// pause ends, and every half minute before, so that a pause staff ended is seen soon.
document.addEventListener("DOMContentLoaded", () => {
  const again = document.querySelector("a[data-paused-seconds]");
  if (!again) return;
  const wait = Math.min(Number(again.dataset.pausedSeconds), 30);
  setTimeout(() => location.replace(again.href), wait * 1000 + 500);
});

// Times are written in UTC; shown in the reader's own time zone and language.
const localTimes = (root) => {
  const format = new Intl.DateTimeFormat(document.documentElement.lang || undefined, { dateStyle: "medium", timeStyle: "short" });
  for (const el of root.querySelectorAll("time[data-local]")) {
    const at = new Date(el.getAttribute("datetime"));
    if (!isNaN(at)) el.textContent = format.format(at);
  }
};
document.addEventListener("DOMContentLoaded", () => localTimes(document));

// A live character count under message boxes. The count is not read aloud at each
// key; going over the limit is.
document.addEventListener("DOMContentLoaded", () => {
  for (const box of document.querySelectorAll("textarea[data-count]")) {
    const out = document.getElementById(box.dataset.count);
    const max = Number(box.dataset.max);
    const original = out.textContent;
    const alert = document.createElement("span");
    alert.className = "visually-hidden";
    alert.setAttribute("aria-live", "polite");
    out.after(alert);
    let over = false;
    const update = () => {
      const n = [...box.value].length;
      out.textContent = n === 0 ? original : n + " / " + max;
      out.classList.toggle("error", n > max);
      if (n > max !== over) {
        over = n > max;
        alert.textContent = over ? out.dataset.over.replace("%d", n - max) : "";
      }
    };
    box.addEventListener("input", update);
    update();
  }
});

// The cost of the message being written, in stamps and money, as photos are chosen
// and a reply is prepaid. The server says the same before any of that.
document.addEventListener("DOMContentLoaded", () => {
  const cost = document.getElementById("message-cost");
  const photos = document.getElementById("photos");
  if (!cost || !photos) return;
  const prepaid = document.getElementById("prepaid-reply");
  const stampCents = Number(cost.dataset.stampCents);
  const update = () => {
    const chosen = Math.min(photos.files.length, Number(cost.dataset.maxPhotos));
    const stamps = 1 + chosen + (prepaid && prepaid.checked ? Number(cost.dataset.replyStamps) : 0);
    // (Not data-one: html/template reads data-on… attributes as event handlers.)
    const words = (stamps === 1 ? cost.dataset.single : cost.dataset.plural).replace("%d", stamps);
    const money = "$" + (stamps * stampCents / 100).toFixed(2);
    cost.textContent = cost.dataset.says.replace("%s", words).replace("%s", money);
  };
  photos.addEventListener("change", update);
  prepaid?.addEventListener("change", update);
});

// The photos picker: the chosen photos show as thumbnails, each with a button that
// takes it out of what is sent, and "Add photos" adds to them rather than replacing
// them. The input stays what sends the photos: its files are rebuilt from the
// chosen ones (a DataTransfer) after every change, and a change event tells the
// cost above. Without this script, or without DataTransfer, the plain input works.
document.addEventListener("DOMContentLoaded", () => {
  const picker = document.getElementById("photo-picker");
  const input = document.getElementById("photos");
  const list = document.getElementById("photo-previews");
  if (!picker || !input || !list) return;
  try {
    new DataTransfer();
  } catch (_) {
    return;
  }
  picker.classList.add("enhanced");
  const status = document.getElementById("photos-status");
  const tooMany = document.getElementById("photos-error");
  const cost = document.getElementById("message-cost");
  const max = cost ? Number(cost.dataset.maxPhotos) : Infinity;
  // Words with %d and %s filled in order (a function, so that a "$" in a file name
  // stays itself).
  const fill = (words, ...values) => values.reduce((s, v) => s.replace(/%[ds]/, () => String(v)), words);
  const same = (a, b) => a.name === b.name && a.size === b.size && a.lastModified === b.lastModified;
  let chosen = [];
  let urls = [];
  let syncing = false;
  const render = () => {
    urls.forEach((url) => URL.revokeObjectURL(url));
    urls = [];
    list.replaceChildren();
    chosen.forEach((file, i) => {
      const item = document.createElement("li");
      const img = document.createElement("img");
      img.src = URL.createObjectURL(file);
      urls.push(img.src);
      img.alt = fill(picker.dataset.alt, i + 1, file.name);
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "button secondary remove-photo";
      const which = document.createElement("span");
      which.className = "visually-hidden";
      which.textContent = " " + fill(picker.dataset.which, i + 1);
      remove.append(picker.dataset.remove, which);
      remove.addEventListener("click", () => {
        chosen.splice(i, 1);
        sync();
        status.textContent = fill(picker.dataset.removed, i + 1);
        // The focus goes to the photo that took its place, or the one before, or
        // back to "Add photos".
        const buttons = list.querySelectorAll("button");
        (buttons[Math.min(i, buttons.length - 1)] || input).focus();
      });
      item.append(img, remove);
      list.append(item);
    });
    list.hidden = chosen.length === 0;
    tooMany.hidden = chosen.length <= max;
  };
  const sync = () => {
    const files = new DataTransfer();
    for (const file of chosen) files.items.add(file);
    syncing = true;
    input.files = files.files;
    input.dispatchEvent(new Event("change"));
    syncing = false;
    render();
  };
  // Photos the browser kept in the input (a page restored from history).
  chosen = [...input.files];
  render();
  input.addEventListener("change", () => {
    if (syncing) return;
    const picked = [...input.files];
    if (picked.length === 0) chosen = []; // the choice was cleared
    for (const file of picked) {
      if (!chosen.some((c) => same(c, file))) chosen.push(file);
    }
    sync();
  });
});

// On an open kiosk page, new messages appear by themselves: the page holds a
// request open until the server says something was delivered, then fetches the
// page again and swaps in the fresh list. A reply being written is untouched.
document.addEventListener("DOMContentLoaded", () => {
  const watched = document.querySelector("[data-latest]");
  const notice = document.getElementById("new-mail");
  if (!watched || !watched.id) return;
  const pause = (ms) => new Promise((done) => setTimeout(done, ms));
  const refresh = async () => {
    // Marked as a background fetch: it neither keeps the session alive nor marks
    // messages read; only the resident's own taps do.
    const res = await fetch(location.pathname, { credentials: "same-origin", cache: "no-store", headers: { "X-Kiosk-Background": "1" } });
    if (!res.ok) return;
    const fresh = new DOMParser().parseFromString(await res.text(), "text/html").getElementById(watched.id);
    if (!fresh) return;
    watched.innerHTML = fresh.innerHTML;
    localTimes(watched);
    if (notice) notice.hidden = false;
    watched.lastElementChild?.scrollIntoView({ block: "end" });
    if (watched.id === "thread") unread = true;
  };
  // A message that arrived on an open conversation is read once the resident is
  // seen at the screen (a touch, a key): the page is fetched as a tap fetches it,
  // which marks what it shows read.
  let unread = false;
  for (const event of ["pointerdown", "keydown", "touchstart", "wheel"]) {
    document.addEventListener(event, () => {
      if (!unread) return;
      unread = false;
      fetch(location.pathname, { credentials: "same-origin", cache: "no-store" }).catch(() => { unread = true; });
    }, { passive: true });
  }
  (async () => {
    let seen = null;
    for (;;) {
      try {
        const url = watched.dataset.latest + (seen === null ? "" : "?after=" + encodeURIComponent(seen));
        const res = await fetch(url, { credentials: "same-origin", cache: "no-store" });
        if (res.status === 401) return; // signed out: the page is about to go
        if (!res.ok) { await pause(5000); continue; }
        const { latest } = await res.json();
        if (seen !== null && latest !== seen) await refresh();
        seen = latest;
      } catch (_) {
        await pause(5000); // offline for a moment
      }
    }
  })();
});

// A message being written survives a trip to the wallet: its text is kept in this
// tab (sessionStorage, gone when the tab closes: a kiosk or a shared computer keeps
// nothing) and put back when the page comes again empty; a sent message forgets it.
document.addEventListener("DOMContentLoaded", () => {
  const form = document.querySelector("form[data-draft]");
  const box = form?.querySelector("textarea[name=text]");
  if (!form || !box) return;
  const key = form.dataset.draft;
  try {
    if (form.hasAttribute("data-draft-sent")) sessionStorage.removeItem(key);
    const kept = sessionStorage.getItem(key);
    if (kept && box.value === "") {
      box.value = kept;
      box.dispatchEvent(new Event("input"));
    }
    box.addEventListener("input", () => sessionStorage.setItem(key, box.value));
  } catch (e) {
    // Storage refused (private mode): the draft lives only on the page.
  }
});

// A Print button beside a printable list (the day's visits); without the script,
// the browser's own Print prints the same list.
document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("button[data-print]")) {
    button.hidden = false;
    button.addEventListener("click", () => window.print());
  }
});
