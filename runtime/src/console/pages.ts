/**
 * The consoles' pages and their scripts. Scripts are files of their own (no inline script),
 * so the Content-Security-Policy can forbid inline code; xterm.js and noVNC are served
 * from their npm packages under /assets/.
 */

/** Strict enough that an injected string could run nothing: own scripts only, no framing. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  // xterm.js and noVNC set element styles from script; noVNC's cursor is a data: image.
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'none'",
].join("; ");

const escapeHtml = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);

const layout = (title: string, head: string, body: string) => `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>
  html, body { margin: 0; height: 100%; background: #111; color: #ddd; font: 14px system-ui, sans-serif; }
  header { padding: 6px 10px; display: flex; gap: 16px; align-items: center; background: #222; }
  header a { color: #8cf; }
  #status { margin-left: auto; color: #aaa; }
  main { position: absolute; top: 34px; left: 0; right: 0; bottom: 0; }
  ul { line-height: 2; }
</style>
${head}
</head>
<body>
${body}
</body>
</html>
`;

const header = (machine: string, current: string) => `<header>
  <strong>${escapeHtml(machine)}</strong>
  <a href="/"${current === "index" ? ' aria-current="page"' : ""}>consoles</a>
  <a href="/serial"${current === "serial" ? ' aria-current="page"' : ""}>serial</a>
  <a href="/vnc"${current === "vnc" ? ' aria-current="page"' : ""}>screen (VNC)</a>
  <span id="status"></span>
</header>`;

export function indexPage(machine: string): string {
  return layout(
    `${machine}: consoles`,
    "",
    `${header(machine, "index")}
<main style="padding: 10px 20px">
<p>The consoles of the virtual machine <strong>${escapeHtml(machine)}</strong>:</p>
<ul>
  <li><a href="/serial">Serial console</a>: the guest's first serial port (ttyS0) in a terminal; the boot messages, then a login prompt.</li>
  <li><a href="/vnc">Screen</a>: the guest's graphical display through noVNC.</li>
</ul>
<p>Everyone with the token sees the same console and may type into it.</p>
</main>`,
  );
}

export function serialPage(machine: string): string {
  return layout(
    `${machine}: serial console`,
    `<link rel="stylesheet" href="/assets/xterm/xterm.css">
<script src="/assets/xterm/xterm.js"></script>
<script src="/assets/xterm/addon-fit.js"></script>
<script src="/assets/serial.js" defer></script>`,
    `${header(machine, "serial")}
<main id="terminal"></main>`,
  );
}

export function vncPage(machine: string): string {
  return layout(
    `${machine}: screen`,
    `<script type="module" src="/assets/vnc.js"></script>`,
    `${header(machine, "vnc")}
<main id="screen"></main>`,
  );
}

/** The terminal: bytes from the WebSocket into xterm.js, keystrokes back. */
export const SERIAL_SCRIPT = `"use strict";
(function () {
  const status = document.getElementById("status");
  const term = new Terminal({ scrollback: 10000, convertEol: false, cursorBlink: true, fontSize: 14 });
  term.open(document.getElementById("terminal"));
  window.devmachinesTerminal = term;
  const fitAddon = new FitAddon.FitAddon();
  term.loadAddon(fitAddon);
  const fit = () => { try { fitAddon.fit(); } catch (error) { /* not laid out yet */ } };
  window.addEventListener("resize", fit);
  fit();
  const encoder = new TextEncoder();
  let socket;
  let retry = 1000;
  let replaying = false;
  const connect = () => {
    socket = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/serial");
    socket.binaryType = "arraybuffer";
    // The first message replays recent output: the terminal must not answer the queries in it
    // (cursor position reports and the like would reach the guest's shell as typed text).
    let first = true;
    socket.onopen = () => { status.textContent = "connected"; retry = 1000; term.focus(); };
    socket.onmessage = (event) => {
      const bytes = new Uint8Array(event.data);
      if (!first) return term.write(bytes);
      first = false;
      replaying = true;
      term.write(bytes, () => { replaying = false; });
    };
    socket.onclose = (event) => {
      status.textContent = "disconnected" + (event.reason ? ": " + event.reason : "") + "; reconnecting";
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 15000);
    };
  };
  term.onData((data) => { if (!replaying && socket && socket.readyState === WebSocket.OPEN) socket.send(encoder.encode(data)); });
  term.onBinary((data) => {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(Uint8Array.from(data, (c) => c.charCodeAt(0) & 255));
  });
  connect();
})();
`;

/** noVNC's RFB client on the proxied WebSocket. */
export const VNC_SCRIPT = `import RFB from "/assets/novnc/core/rfb.js";
const status = document.getElementById("status");
const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/vnc";
let retry = 1000;
function connect() {
  const rfb = new RFB(document.getElementById("screen"), url, { wsProtocols: ["binary"] });
  rfb.scaleViewport = true;
  rfb.background = "#111";
  window.devmachinesRfb = rfb;
  status.textContent = "connecting";
  rfb.addEventListener("connect", () => { status.textContent = "connected"; retry = 1000; rfb.focus(); });
  rfb.addEventListener("disconnect", (event) => {
    status.textContent = (event.detail.clean ? "disconnected" : "connection lost") + "; reconnecting";
    setTimeout(connect, retry);
    retry = Math.min(retry * 2, 15000);
  });
}
connect();
`;
