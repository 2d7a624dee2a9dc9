// Visit times are written on the facility's clock. Where the reader's own clock
// shows another time at that moment, their time is added beside it:
// "10:00–10:20 EST (your time: 7:00 AM PST)". The server cannot know the reader's
// zone; without this script the facility's time stands alone, and says so.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const lang = document.documentElement.lang || undefined;
  let mine;
  try {
    mine = Intl.DateTimeFormat().resolvedOptions().timeZone;
  } catch {
    return;
  }
  for (const scope of document.querySelectorAll("[data-facility-zone]")) {
    const facility = scope.dataset.facilityZone;
    const label = scope.dataset.yourTime;
    for (const el of scope.querySelectorAll("time[data-facility-time]")) {
      const at = new Date(el.getAttribute("datetime"));
      if (isNaN(at)) continue;
      const wall = { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
      let theirs, ours;
      try {
        theirs = new Intl.DateTimeFormat("en-US", { ...wall, timeZone: facility }).format(at);
        ours = new Intl.DateTimeFormat("en-US", { ...wall, timeZone: mine }).format(at);
      } catch {
        continue; // a zone this browser does not know
      }
      if (theirs === ours) continue; // the same clock: nothing to add
      // The day too, where the reader's date differs or the page names the day.
      const sameDay = theirs.slice(0, 10) === ours.slice(0, 10);
      const shown = { hour: "numeric", minute: "2-digit", timeZoneName: "short" };
      if (!sameDay || el.hasAttribute("data-with-day")) shown.weekday = "short";
      if (!sameDay) Object.assign(shown, { month: "short", day: "numeric" });
      const note = document.createElement("span");
      note.className = "your-time";
      note.textContent = " (" + label + " " + new Intl.DateTimeFormat(lang, shown).format(at) + ")";
      el.after(note);
    }
  }
});
