/**
 * The launcher's console server (CONSOLE_PORT): a small HTTP server with the serial
 * console (xterm.js) and the screen (noVNC) as pages, and their WebSockets: `/ws/serial`
 * on the shared {@link SerialHub}, `/ws/vnc` proxied to QEMU's VNC Unix socket.
 * Every request, upgrades included, passes the Origin and token checks of ./auth.ts first.
 */
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { connect, type Socket } from "node:net";
import { createRequire } from "node:module";
import { dirname, extname, join, resolve, sep } from "node:path";
import type { Duplex } from "node:stream";
import { WebSocketServer, type WebSocket } from "ws";
import { authenticate, originAllowed, tokenRedirect } from "./auth.js";
import { CONTENT_SECURITY_POLICY, indexPage, SERIAL_SCRIPT, serialPage, VNC_SCRIPT, vncPage } from "./pages.js";
import type { SerialHub } from "./serialHub.js";

export interface ConsoleServerOptions {
  port: number;
  /** Listen address. Default: every address of the container. */
  host?: string;
  token: string;
  /** Shown in the pages' titles: the guest's host name. */
  machine: string;
  hub: SerialHub;
  /** QEMU's `-vnc unix:` socket. */
  vncSocket: string;
  log: (message: string) => void;
}

/** A browser terminal that cannot keep up is closed rather than buffered without end. */
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;

const require = createRequire(import.meta.url);
/** The folder of an installed npm package, found through its main entry. */
const packageDir = (entry: string, depth: number) => {
  let dir = require.resolve(entry);
  for (let i = 0; i < depth; i++) dir = dirname(dir);
  return dir;
};

const TYPES: Record<string, string> = {
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".html": "text/html; charset=utf-8",
};

/** Fixed asset paths, and folders served below a prefix (noVNC's ES modules import each other). */
function assetTable() {
  const xterm = packageDir("@xterm/xterm", 2); // lib/xterm.js
  const fit = packageDir("@xterm/addon-fit", 2);
  const novnc = packageDir("@novnc/novnc", 2); // core/rfb.js
  return {
    files: new Map<string, string>([
      ["/assets/xterm/xterm.js", join(xterm, "lib", "xterm.js")],
      ["/assets/xterm/xterm.css", join(xterm, "css", "xterm.css")],
      ["/assets/xterm/addon-fit.js", join(fit, "lib", "addon-fit.js")],
    ]),
    folders: new Map<string, string>([
      ["/assets/novnc/core/", join(novnc, "core")],
      ["/assets/novnc/vendor/", join(novnc, "vendor")],
    ]),
  };
}

/** A file below `root` for the rest of a URL path, or undefined for anything that would leave it. */
export function fileBelow(root: string, rest: string): string | undefined {
  let decoded: string;
  try {
    decoded = decodeURIComponent(rest);
  } catch {
    return undefined;
  }
  if (decoded.includes("\0") || decoded.includes("\\") || !/\.js$/.test(decoded)) return undefined;
  const path = resolve(root, decoded);
  return path.startsWith(root + sep) ? path : undefined;
}

/** Refuses an upgrade before any WebSocket exists: a plain HTTP answer on the raw socket. */
function refuseUpgrade(socket: Duplex, status: number, text: string, extra = ""): void {
  const reason = { 401: "Unauthorized", 403: "Forbidden", 404: "Not Found" }[status] ?? "Error";
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text) + 1}\r\n${extra}Connection: close\r\n\r\n${text}\n`,
  );
}

export class ConsoleServer {
  private readonly http: Server;
  private readonly wss = new WebSocketServer({
    noServer: true,
    maxPayload: 1024 * 1024,
    // noVNC asks for "binary"; the terminal asks for nothing.
    handleProtocols: (protocols) => (protocols.has("binary") ? "binary" : false),
  });
  private readonly assets = assetTable();

  private constructor(private readonly opts: ConsoleServerOptions) {
    this.http = createServer((request, response) => {
      this.handle(request, response).catch((error: unknown) => {
        opts.log(`console server: ${(error as Error).message}`);
        if (!response.headersSent) response.writeHead(500).end();
        else response.destroy();
      });
    });
    this.http.on("upgrade", (request, socket, head) => this.upgrade(request, socket, head));
  }

  /** Starts listening; rejects when the port is taken. */
  static async start(options: ConsoleServerOptions): Promise<ConsoleServer> {
    const server = new ConsoleServer(options);
    await new Promise<void>((resolveListen, reject) => {
      server.http.once("error", reject);
      server.http.listen(options.port, options.host, () => {
        server.http.off("error", reject);
        resolveListen();
      });
    });
    return server;
  }

  /** The port it listens on (useful with port 0 in tests). */
  get port(): number {
    const address = this.http.address();
    return typeof address === "object" && address ? address.port : this.opts.port;
  }

  async close(): Promise<void> {
    for (const client of this.wss.clients) client.terminate();
    this.http.closeAllConnections();
    await new Promise<void>((resolveClose) => this.http.close(() => resolveClose()));
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const common = {
      "Content-Security-Policy": CONTENT_SECURITY_POLICY,
      "X-Content-Type-Options": "nosniff",
      "Referrer-Policy": "no-referrer",
      "Cache-Control": "no-store",
    };
    const text = (status: number, body: string, headers: Record<string, string> = {}) => {
      response.writeHead(status, { ...common, "Content-Type": "text/plain; charset=utf-8", ...headers }).end(`${body}\n`);
    };
    const facts = { url: request.url ?? "/", headers: request.headers };
    if (!originAllowed(facts)) return text(403, "forbidden: this page may only be used from its own origin");
    const auth = authenticate(facts, this.opts.token);
    if (!auth.ok) return text(401, `unauthorized: ${auth.reason}`, { "WWW-Authenticate": 'Bearer realm="devmachines console"' });
    if (request.method !== "GET" && request.method !== "HEAD") return text(405, "only GET", { Allow: "GET, HEAD" });
    if (auth.via === "query") {
      const redirect = tokenRedirect(facts, this.opts.token);
      response.writeHead(303, { ...common, Location: redirect.location, "Set-Cookie": redirect.cookie }).end();
      return;
    }

    const path = new URL(facts.url, "http://console.invalid").pathname;
    const html = (page: string) => void response.writeHead(200, { ...common, "Content-Type": TYPES[".html"]! }).end(page);
    const script = (body: string) => void response.writeHead(200, { ...common, "Content-Type": TYPES[".js"]! }).end(body);
    switch (path) {
      case "/":
        return html(indexPage(this.opts.machine));
      case "/serial":
        return html(serialPage(this.opts.machine));
      case "/vnc":
        return html(vncPage(this.opts.machine));
      case "/assets/serial.js":
        return script(SERIAL_SCRIPT);
      case "/assets/vnc.js":
        return script(VNC_SCRIPT);
      case "/favicon.ico":
        return void response.writeHead(204, common).end(); // browsers ask; no 404 noise
    }
    let file = this.assets.files.get(path);
    for (const [prefix, root] of this.assets.folders) {
      if (!file && path.startsWith(prefix)) file = fileBelow(root, path.slice(prefix.length));
    }
    const info = file ? await stat(file).catch(() => undefined) : undefined;
    if (!file || !info?.isFile()) return text(404, "not found");
    response.writeHead(200, {
      ...common,
      "Content-Type": TYPES[extname(file)] ?? "application/octet-stream",
      "Content-Length": String(info.size),
      // The packages' files change only with a new image.
      "Cache-Control": "private, max-age=3600",
    });
    if (request.method === "HEAD") return void response.end();
    createReadStream(file).pipe(response);
  }

  private upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on("error", () => socket.destroy());
    const facts = { url: request.url ?? "/", headers: request.headers };
    if (!originAllowed(facts)) return refuseUpgrade(socket, 403, "forbidden: WebSocket from a foreign origin");
    const auth = authenticate(facts, this.opts.token);
    if (!auth.ok) return refuseUpgrade(socket, 401, `unauthorized: ${auth.reason}`, 'WWW-Authenticate: Bearer realm="devmachines console"\r\n');
    const path = new URL(facts.url, "http://console.invalid").pathname;
    if (path !== "/ws/serial" && path !== "/ws/vnc") return refuseUpgrade(socket, 404, "not found");
    this.wss.handleUpgrade(request, socket, head, (ws) => (path === "/ws/serial" ? this.serial(ws) : this.vnc(ws)));
  }

  private serial(ws: WebSocket): void {
    const detach = this.opts.hub.attach({
      write: (data) => {
        if (ws.bufferedAmount > MAX_BUFFERED_BYTES) return ws.close(1008, "too slow: output piled up");
        ws.send(data, { binary: true });
      },
    });
    ws.on("message", (data: Buffer | ArrayBuffer | Buffer[]) => {
      const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
      this.opts.hub.type(bytes);
    });
    ws.on("close", detach);
    ws.on("error", () => ws.terminate());
  }

  /** One VNC connection per WebSocket: QEMU's VNC server takes several clients at once. */
  private vnc(ws: WebSocket): void {
    const vnc: Socket = connect(this.opts.vncSocket);
    const pending: Buffer[] = [];
    let connected = false;
    vnc.on("connect", () => {
      connected = true;
      for (const chunk of pending.splice(0)) vnc.write(chunk);
    });
    vnc.on("data", (data) => {
      ws.send(data, { binary: true });
      // Back-pressure: stop reading from QEMU while the browser lags.
      if (ws.bufferedAmount > MAX_BUFFERED_BYTES) {
        vnc.pause();
        const resume = setInterval(() => {
          if (ws.readyState !== ws.OPEN || ws.bufferedAmount < MAX_BUFFERED_BYTES / 2) {
            clearInterval(resume);
            vnc.resume();
          }
        }, 50);
      }
    });
    vnc.on("error", (error: NodeJS.ErrnoException) => {
      const why = error.code === "ENOENT" || error.code === "ECONNREFUSED" ? "the VM's display is not up (yet)" : `VNC: ${error.message}`;
      ws.close(1011, why);
    });
    vnc.on("close", () => {
      if (ws.readyState === ws.OPEN) ws.close(1000, "the VM's display closed");
    });
    ws.on("message", (data: Buffer | ArrayBuffer | Buffer[]) => {
      const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
      if (connected) vnc.write(bytes);
      else pending.push(bytes);
    });
    ws.on("close", () => vnc.destroy());
    ws.on("error", () => vnc.destroy());
  }
}
