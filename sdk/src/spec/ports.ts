/**
 * What NAT publishes: SSH always (the guest's port 22 on the container's port 22), and each
 * of `ports` twice over: the launcher forwards the container's port into the guest (PORTS),
 * Docker publishes it on the Docker host. In BRIDGE mode the VM owns the container's
 * address, so nothing is published and `ports`/`sshPort` are refused.
 */
import type { ConfigIssue } from "@devmachines/runtime/config";
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
  if (network === "NAT") {
    published.push({
      containerPort: GUEST_SSH_PORT,
      protocol: "tcp",
      ...(settings.sshPort !== undefined && { hostPort: settings.sshPort }),
      ...(sshHostIp && { hostIp: sshHostIp }),
    });
    const forwards: string[] = [];
    for (const port of settings.ports ?? []) {
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
