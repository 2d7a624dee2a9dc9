// The camera check: the family's camera and microphone, then a loopback call
// through the server (their media comes back to them), measured with getStats and
// judged in plain words. Everything it says comes from the page (data-w-*).
(function () {
  'use strict';
  var box = document.getElementById('camera-check');
  if (!box || !window.RTCPeerConnection) { return; }
  var words = function (k) { return box.getAttribute('data-w-' + k) || ''; };
  var status = document.getElementById('check-status');
  var start = document.getElementById('check-start');
  var self = document.getElementById('check-self');
  var back = document.getElementById('check-back');
  var level = document.getElementById('check-level');
  var results = document.getElementById('check-results');
  var verdict = document.getElementById('check-verdict');
  var stream = null, heard = 0;

  function say(text) { status.textContent = text; }

  function listen(s) {
    var Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) { return; }
    var ctx = new Ctx(), an = ctx.createAnalyser(), data = new Uint8Array(256);
    ctx.createMediaStreamSource(s).connect(an);
    (function tick() {
      an.getByteTimeDomainData(data);
      var peak = 0;
      for (var i = 0; i < data.length; i++) { peak = Math.max(peak, Math.abs(data[i] - 128) / 128); }
      level.value = peak;
      if (peak > 0.02) { heard++; }
      requestAnimationFrame(tick);
    })();
  }

  function row(name, value) {
    var dt = document.createElement('dt'), dd = document.createElement('dd');
    dt.textContent = name; dd.textContent = value;
    results.appendChild(dt); results.appendChild(dd);
  }

  function measure(pc, done) {
    var first = null;
    function read(cb) {
      pc.getStats().then(function (stats) {
        var m = { rtt: null, lost: 0, got: 0, frames: 0, bitrate: null, t: performance.now() };
        stats.forEach(function (s) {
          if (s.type === 'candidate-pair' && s.nominated && s.currentRoundTripTime !== undefined) { m.rtt = s.currentRoundTripTime; }
          if (s.type === 'candidate-pair' && s.nominated && s.availableOutgoingBitrate) { m.bitrate = s.availableOutgoingBitrate; }
          if (s.type === 'inbound-rtp') {
            m.lost += s.packetsLost || 0; m.got += s.packetsReceived || 0;
            if (s.kind === 'video') { m.frames = s.framesDecoded || 0; }
          }
        });
        cb(m);
      });
    }
    setTimeout(function () {
      read(function (a) {
        first = a;
        setTimeout(function () {
          read(function (b) {
            var secs = (b.t - first.t) / 1000;
            var got = b.got - first.got, lost = b.lost - first.lost;
            done({
              rtt: b.rtt, fps: (b.frames - first.frames) / secs,
              loss: got + lost > 0 ? lost / (got + lost) : 1, bitrate: b.bitrate
            });
          });
        }, 5000);
      });
    }, 3000);
  }

  function judge(m) {
    results.innerHTML = '';
    results.hidden = false;
    row(words('rtt'), m.rtt === null ? '—' : Math.round(m.rtt * 1000) + ' ms');
    row(words('loss'), (m.loss * 100).toFixed(1) + ' %');
    row(words('fps'), m.fps.toFixed(0));
    row(words('bitrate'), m.bitrate ? Math.round(m.bitrate / 1000) + ' kbit/s' : '—');
    row(words('sound'), heard > 10 ? '✓' : words('silent'));
    var good = m.fps >= 15 && m.loss < 0.02 && (m.rtt === null || m.rtt < 0.3) && (!m.bitrate || m.bitrate >= 500000);
    var fair = m.fps >= 8 && m.loss < 0.08 && (m.rtt === null || m.rtt < 0.6);
    verdict.textContent = good ? words('good') : (fair ? words('fair') : words('poor'));
    verdict.hidden = false;
    verdict.setAttribute('data-verdict', good ? 'good' : (fair ? 'fair' : 'poor'));
  }

  function call() {
    start.disabled = true;
    say(words('testing'));
    var proto = location.protocol === 'https:' ? 'wss://' : 'ws://';
    var ws = new WebSocket(proto + location.host + box.getAttribute('data-signal'));
    var pc = null, added = false, measured = false;
    function send(m) { if (ws.readyState === 1) { ws.send(JSON.stringify(m)); } }
    function ensure(servers) {
      if (pc) { return; }
      pc = new RTCPeerConnection({ iceServers: servers || [] });
      pc.onicecandidate = function (e) { if (e.candidate) { send({ type: 'candidate', candidate: e.candidate.toJSON() }); } };
      pc.ontrack = function (e) {
        if (e.track.kind === 'video') { back.srcObject = e.streams[0] || new MediaStream([e.track]); }
      };
    }
    ws.onmessage = function (ev) {
      var m = JSON.parse(ev.data);
      if (m.type === 'config') { ensure(m.ice_servers); return; }
      ensure([]);
      if (m.type === 'offer') {
        pc.setRemoteDescription({ type: 'offer', sdp: m.sdp }).then(function () {
          if (!added) {
            added = true;
            stream.getTracks().forEach(function (t) { pc.addTrack(t, stream); });
          }
          return pc.createAnswer();
        }).then(function (a) { return pc.setLocalDescription(a); })
          .then(function () { send({ type: 'answer', sdp: pc.localDescription.sdp }); });
      } else if (m.type === 'candidate' && m.candidate) {
        pc.addIceCandidate(m.candidate).catch(function () {});
      } else if (m.type === 'state' && m.state === 'connected' && !measured) {
        measured = true;
        measure(pc, function (r) {
          judge(r);
          say('');
          back.pause(); // keep the last picture that came back, not a black box
          send({ type: 'end' });
          ws.close();
          pc.close();
          start.disabled = false;
        });
      }
    };
    ws.onerror = ws.onclose = function () {
      if (!measured) { say(words('failed')); start.disabled = false; }
    };
  }

  start.addEventListener('click', function () {
    if (stream) { call(); return; }
    navigator.mediaDevices.getUserMedia({ video: true, audio: true }).then(function (s) {
      stream = s;
      self.srcObject = s;
      listen(s);
      say(words('camera-ok'));
      call();
    }).catch(function (e) {
      say(e && e.name === 'NotFoundError' ? words('nodevice') : words('denied'));
    });
  });
})();
