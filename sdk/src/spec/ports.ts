/**
 * What NAT publishes: SSH always (the guest's port 22 on the container's port 22), and each
 * of `ports` twice over: the launcher forwards the container's port into the guest (PORTS),
 * Docker publishes it on the Docker host. In BRIDGE mode the VM owns the container's
 * address, so nothing is published and `ports`/`sshPort` are refused.
 */
import type { ConfigIssue } from "@devmachines/runtime/config";
import { isIP } from "node:net";
import type { NetworkMode } from "../args.js";
import { GUEST_SSH_PORT } from "../defaults.js";
import type { MachineSettings, PublishedPort } from "../description.js";

export interface PortsPart {
  env: Record<string, string>;
  published: PublishedPort[];
  issues: ConfigIssue[];
}

export function portsPart(settings: MachineSettings, network: NetworkMode): PortsPart {
  const env: Record<string, string> = {};
  const published: PublishedPort[] = [];
  const issues: ConfigIssue[] = [];
  const sshHostIp = settings.sshHostIp;
  const badPorts = portIssues(settings.ports ?? [], sshHostIp);
  issues.push(...badPorts);
  if (network === "NAT") {
    published.push({
      containerPort: GUEST_SSH_PORT,
      protocol: "tcp",
      ...(settings.sshPort !== undefined && { hostPort: settings.sshPort }),
      ...(sshHostIp && { hostIp: sshHostIp }),
    });
    const forwards: string[] = [];
    // Bad values never reach PORTS (the error lists them instead).
    for (const port of badPorts.length > 0 ? [] : (settings.ports ?? [])) {
      const protocol = port.protocol ?? "tcp";
      // Container port = guest port: the launcher forwards it into the guest, Docker publishes it.
      forwards.push(`${port.guestPort}:${port.guestPort}/${protocol}`);
      const hostIp = port.hostIp ?? sshHostIp;
      published.push({
        containerPort: port.guestPort,
        protocol,
        ...(port.hostPort !== undefined && { hostPort: port.hostPort }),
        ...(hostIp && { hostIp }),
      });
    }
    if (forwards.length > 0) env.PORTS = forwards.join(",");
  } else if (settings.ports?.length || settings.sshPort !== undefined) {
    issues.push({ variable: "PORTS", message: "has no effect with NETWORK=BRIDGE: the VM owns the container's address, so reach its ports there (drop ports and sshPort)" });
  }
  return { env, published, issues };
}

/*
 * The values are checked here, each by itself and named: the runtime re-reads PORTS, but a
 * protocol such as `tcp,22` would already have added a forward there, and Docker would only
 * fail at deploy time on a bad host port or address.
 */
const isPort = (value: unknown) => Number.isInteger(value) && (value as number) >= 1 && (value as number) <= 65535;

export interface PortSettings {
  guestPort: number;
  hostPort?: number | undefined;
  protocol?: string | undefined;
  hostIp?: string | undefined;
}

/** One issue per bad value: `ports[1].protocol`, `sshHostIp`, ... Values are shown (none is secret). */
export function portIssues(ports: readonly PortSettings[], sshHostIp: string | undefined): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const shown = (value: unknown) => (typeof value === "string" ? value : JSON.stringify(value) ?? String(value)).slice(0, 100);
  ports.forEach((port, index) => {
    const at = `ports[${index}]`;
    if (!isPort(port.guestPort)) issues.push({ variable: `${at}.guestPort`, value: shown(port.guestPort), message: "must be a port number 1-65535" });
    if (port.hostPort !== undefined && !isPort(port.hostPort)) {
      issues.push({ variable: `${at}.hostPort`, value: shown(port.hostPort), message: "must be a port number 1-65535 (or left out: Docker picks one)" });
    }
    if (port.protocol !== undefined && port.protocol !== "tcp" && port.protocol !== "udp") {
      issues.push({ variable: `${at}.protocol`, value: shown(port.protocol), message: "must be tcp or udp" });
    }
    if (port.hostIp !== undefined && (typeof port.hostIp !== "string" || isIP(port.hostIp) === 0)) {
      issues.push({ variable: `${at}.hostIp`, value: shown(port.hostIp), message: "must be an IPv4 or IPv6 address, e.g. 127.0.0.1 (or left out: every address)" });
    }
  });
  if (sshHostIp !== undefined && (typeof sshHostIp !== "string" || isIP(sshHostIp) === 0)) {
    issues.push({ variable: "sshHostIp", value: shown(sshHostIp), message: "must be an IPv4 or IPv6 address, e.g. 127.0.0.1" });
  }
  return issues;
}
