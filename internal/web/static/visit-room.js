// A live video visit's room (the "visitRoom" template): the family's browser, the
// resident's kiosk at its station and an officer watching all run this one script,
// with the page's words in the room's data attributes.
//
// Signalling is one WebSocket (the page's data-signal) of JSON messages. The server
// always offers and this page answers. A publisher (family, resident) takes the
// offer, then adds its camera and microphone, which reuse the offer's first two
// transceivers, and answers; a watcher adds nothing. Candidates trickle both ways.
// The server says the room's state (waiting, connected, reconnecting, ended with
// who and why). When the network changes or drops, the page asks for an ICE
// restart over the socket if it is up, and otherwise joins again with a new socket
// and connection, backing off, until the slot ends.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const room = document.getElementById("visit-room");
  if (!room) return;
  const say = room.dataset;
  const watcher = say.role === "watcher";
  const kiosk = document.body.classList.contains("kiosk");
  const $ = (id) => document.getElementById(id);
  const stateText = $("room-state-text");
  const why = $("room-why");
  const connectedText = $("room-connected");
  const leftText = $("room-left");
  const selfVideo = $("self-video");
  const remoteVideo = $("remote-video");
  const controls = $("room-controls");
  let endsAt = Date.parse(say.endsAt);

  let local = null; // the camera and microphone
  let ws = null;
  let pc = null;
  let published = false; // pc carries our camera and microphone
  let pending = []; // the server's candidates that came before its offer was taken
  let queue = Promise.resolve(); // messages are handled one after the other
  let serverState = "";
  let joined = false;
  let ended = false;
  let connectedMs = 0;
  let since = 0; // when the current connected stretch began
  let tries = 0;
  let retryTimer = 0;
  let rejoinTimer = 0;
  let lastRestart = 0;

  const clock = (ms) => {
    const s = Math.max(0, Math.floor(ms / 1000));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const ss = String(s % 60).padStart(2, "0");
    return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
  };
  const show = (text, reason) => {
    stateText.textContent = text;
    why.textContent = reason || "";
    why.hidden = !reason;
  };
  const send = (m) => {
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify(m));
      return true;
    }
    return false;
  };
  const counting = (on) => {
    const now = Date.now();
    if (on && !since) since = now;
    if (!on && since) {
      connectedMs += now - since;
      since = 0;
    }
  };
  const tick = () => {
    const now = Date.now();
    connectedText.textContent = say.sayConnectedFor.replace("%s", clock(connectedMs + (since ? now - since : 0)));
    leftText.textContent = ended ? "" : say.sayLeft.replace("%s", clock(endsAt - now));
  };

  // The words of the room's state as the server last said it.
  const showServerState = () => {
    switch (serverState) {
      case "waiting": return show(say.sayWaiting);
      case "connected": return show(say.sayConnected);
      case "reconnecting": return show(say.sayReconnecting);
    }
    return show(say.sayConnecting);
  };

  // finish shows who ended the visit and why, and lets go of everything.
  const finish = (by, reason) => {
    if (ended) return;
    ended = true;
    counting(false);
    let words = say.bySystem;
    if (by === "staff") words = say.byStaff.replace("%s", reason || "");
    else if (by === "family") words = say.byFamily;
    else if (by === "resident") words = say.byResident;
    else if (reason === "time_up") words = say.byTime;
    show(say.sayEnded, words);
    stop();
    for (const stage of room.querySelectorAll(".room-stage")) stage.hidden = true;
    if (controls) controls.hidden = true;
    for (const id of ["room-hangup-confirm", "room-start", "end-visit"]) {
      if ($(id)) $(id).hidden = true;
    }
    $("room-after").hidden = false;
    tick();
  };
  const stop = () => {
    clearTimeout(retryTimer);
    clearTimeout(rejoinTimer);
    const sock = ws;
    ws = null;
    if (sock) sock.close();
    if (pc) pc.close();
    pc = null;
    if (local) for (const t of local.getTracks()) t.stop();
  };

  // newPeer makes the connection of one socket: a new socket is a new participant
  // to the server, with a new offer.
  const newPeer = () => {
    if (pc) pc.close();
    published = false;
    pending = [];
    const peer = new RTCPeerConnection();
    pc = peer;
    peer.onicecandidate = (e) => {
      if (e.candidate && pc === peer) send({ type: "candidate", candidate: e.candidate.toJSON() });
    };
    peer.ontrack = (e) => {
      const stream = e.streams[0] || new MediaStream([e.track]);
      let video = remoteVideo;
      if (watcher) video = $((stream.id === "resident" ? "resident" : "family") + "-video");
      if (video && video.srcObject !== stream) video.srcObject = stream;
    };
    peer.onconnectionstatechange = () => {
      if (pc !== peer || ended) return;
      const s = peer.connectionState;
      if (s === "disconnected" || s === "failed") recover();
      if (s === "connected") {
        clearTimeout(rejoinTimer);
        showServerState();
      }
    };
  };

  const answer = async (sdp) => {
    const peer = pc;
    if (!peer) return;
    await peer.setRemoteDescription({ type: "offer", sdp });
    if (!watcher && !published && local) {
      // The offer's first video and audio transceivers are ours to send on.
      for (const t of local.getVideoTracks()) peer.addTrack(t, local);
      for (const t of local.getAudioTracks()) peer.addTrack(t, local);
      published = true;
    }
    await peer.setLocalDescription(await peer.createAnswer());
    send({ type: "answer", sdp: peer.localDescription.sdp });
    for (const c of pending.splice(0)) await peer.addIceCandidate(c).catch(() => {});
  };

  const handle = async (m) => {
    switch (m.type) {
      case "config":
        // The TURN server with this visit's credentials, before the offer: set
        // before the answer, so gathering uses it.
        if (pc && m.ice_servers) pc.setConfiguration({ iceServers: m.ice_servers });
        return;
      case "offer":
        return answer(m.sdp);
      case "candidate":
        if (!pc || !m.candidate) return;
        if (!pc.remoteDescription) return void pending.push(m.candidate);
        return pc.addIceCandidate(m.candidate).catch(() => {});
      case "state":
        if (m.ends_at) endsAt = Date.parse(m.ends_at);
        if (m.state === "ended") return finish(m.by, m.reason);
        serverState = m.state;
        counting(m.state === "connected");
        return showServerState();
    }
  };

  const connect = () => {
    if (ended) return;
    clearTimeout(retryTimer);
    retryTimer = 0;
    const url = new URL(say.signal, location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    const sock = new WebSocket(url);
    ws = sock;
    newPeer();
    sock.onopen = () => { tries = 0; };
    sock.onmessage = (e) => {
      if (ws !== sock) return;
      let m;
      try { m = JSON.parse(e.data); } catch (_) { return; }
      queue = queue.then(() => handle(m)).catch(() => {});
    };
    sock.onclose = (e) => {
      if (ws !== sock) return;
      ws = null;
      if (ended) return;
      counting(false);
      if (e.reason === "joined again elsewhere") {
        ended = true;
        show(say.sayElsewhere);
        stop();
        if (controls) controls.hidden = true;
        $("room-after").hidden = false;
        return;
      }
      show(navigator.onLine === false ? say.sayOffline : say.sayReconnecting);
      retry();
    };
  };

  // retry joins again after a wait that grows to 10 s, until the slot ends.
  const retry = () => {
    if (ended || retryTimer) return;
    if (Date.now() >= endsAt) return finish("system", "time_up"); // the slot is over: no room to join
    const wait = Math.min(10000, 1000 * 2 ** tries);
    tries++;
    retryTimer = setTimeout(connect, wait);
  };

  // recover mends the media after a network change: an ICE restart over the
  // socket, or a new socket when it is down (or the restart did not help).
  const recover = () => {
    if (ended || !joined) return;
    counting(false);
    show(say.sayReconnecting);
    if (ws && ws.readyState === WebSocket.OPEN) {
      if (Date.now() - lastRestart > 3000) {
        lastRestart = Date.now();
        send({ type: "restart" });
      }
      clearTimeout(rejoinTimer);
      rejoinTimer = setTimeout(() => {
        if (!ended && ws && pc && pc.connectionState !== "connected") ws.close(); // onclose joins again
      }, 10000);
    } else if (!ws || ws.readyState !== WebSocket.CONNECTING) {
      tries = 0;
      clearTimeout(retryTimer);
      retryTimer = 0;
      connect();
    }
  };
  addEventListener("online", recover);
  addEventListener("offline", () => { if (joined && !ended) show(say.sayOffline); });

  const begin = () => {
    joined = true;
    show(say.sayConnecting);
    connect();
  };

  setInterval(() => {
    tick();
    // A resident in a visit is at the kiosk without touching it: keep its idle
    // sign-out away (kinlink.js listens).
    if (kiosk && joined && !ended) document.dispatchEvent(new Event("kinlink:busy"));
  }, 1000);
  tick();

  if (watcher) {
    begin();
    return;
  }

  const join = $("room-join");
  if (!navigator.mediaDevices?.getUserMedia || !window.RTCPeerConnection || !window.WebSocket) {
    $("room-unsupported").hidden = false;
    return;
  }
  join.disabled = false;
  join.addEventListener("click", async () => {
    join.disabled = true;
    $("room-camera-refused").hidden = true;
    try {
      local = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
    } catch (_) {
      $("room-camera-refused").hidden = false;
      join.disabled = false;
      return;
    }
    selfVideo.srcObject = local;
    selfVideo.hidden = false;
    $("room-start").hidden = true;
    controls.hidden = false;
    begin();
  });

  const mute = $("room-mute");
  mute.addEventListener("click", () => {
    const muting = local.getAudioTracks().some((t) => t.enabled);
    for (const t of local.getAudioTracks()) t.enabled = !muting;
    mute.textContent = muting ? say.sayUnmute : say.sayMute;
  });
  const camera = $("room-camera");
  camera.addEventListener("click", () => {
    const off = local.getVideoTracks().some((t) => t.enabled);
    for (const t of local.getVideoTracks()) t.enabled = !off;
    selfVideo.hidden = off;
    camera.textContent = off ? say.sayCameraOn : say.sayCameraOff;
  });
  const hangup = $("room-hangup");
  const confirm = $("room-hangup-confirm");
  hangup.addEventListener("click", () => {
    confirm.hidden = false;
    hangup.setAttribute("aria-expanded", "true");
    $("room-hangup-no").focus();
  });
  $("room-hangup-no").addEventListener("click", () => {
    confirm.hidden = true;
    hangup.setAttribute("aria-expanded", "false");
    hangup.focus();
  });
  $("room-hangup-yes").addEventListener("click", () => {
    // The server ends the visit and tells both sides; without a socket, this
    // side leaves, and the slot's end ends it.
    if (!send({ type: "end" })) finish(say.role, "hung_up");
  });
});
