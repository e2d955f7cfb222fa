/**
 * The container description as `@pulumi/docker` arguments. Secrets stay secret on the
 * way: the description is computed from unsecreted settings (so that names, ports and
 * labels stay readable in previews when they hold no secret), and every part that
 * carries a secret is marked secret again here: files with `secret` set, the
 * environment when `secrets.env`, all other arguments when `secrets.other`.
 */
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { envList, type ContainerSpec } from "./description.js";
import { secretIf } from "./secrets.js";

/** `docker.Container` arguments for a container description. */
export function containerArgs(spec: pulumi.Output<ContainerSpec>): docker.ContainerArgs {
  /** A part of the description, secret when a secret setting flows into the container's other arguments. */
  const part = <T>(pick: (s: ContainerSpec) => T): pulumi.Output<T> => spec.apply((s) => secretIf(pick(s), s.secrets.other));
  return {
    name: part((s) => s.name),
    image: part((s) => s.image),
    hostname: part((s) => s.hostname),
    envs: spec.apply((s) => secretIf(envList(s.env), s.secrets.env)),
    uploads: spec.apply((s) =>
      secretIf(
        s.files.map((file) => ({ file: file.path, content: file.content, permissions: file.mode })),
        s.files.some((file) => file.secret),
      ),
    ),
    devices: spec.apply((s) => s.devices.map((path) => ({ hostPath: path, containerPath: path, permissions: "rwm" }))),
    // In Docker's own spelling (CAP_NET_ADMIN): the engine stores and reports capabilities with
    // the prefix, the provider reads them back on refresh, and `capabilities` forces a new
    // container, so `NET_ADMIN` here would show as drift and replace the machine on the next up.
    capabilities: spec.apply((s) => ({ adds: s.capAdd.map(dockerCapability) })),
    ports: part((s) =>
      s.ports.map((port) => ({
        internal: port.containerPort,
        protocol: port.protocol,
        ...(port.hostPort !== undefined && { external: port.hostPort }),
        ...(port.hostIp !== undefined && { ip: port.hostIp }),
      })),
    ),
    volumes: part((s) => s.volumes.map((volume) => ({ volumeName: volume.name, containerPath: volume.containerPath }))),
    labels: part((s) => Object.entries(s.labels).map(([label, value]) => ({ label, value }))),
    // No `healthcheck`: the image's HEALTHCHECK is inherited. With `wait`, `pulumi up` returns
    // once it reports healthy (SSH answers, cloud-init done), not when QEMU starts.
    wait: true,
    waitTimeout: part((s) => s.readyTimeoutSeconds),
    stopSignal: spec.stopSignal,
    stopTimeout: part((s) => s.stopTimeoutSeconds),
    // Same patience on `pulumi destroy`: the guest shuts down cleanly instead of losing its disk's last writes.
    destroyGraceSeconds: part((s) => s.stopTimeoutSeconds),
    restart: part((s) => s.restart),
    networksAdvanced: part((s) => s.networks.map((network) => ({ name: network.name, aliases: network.aliases }))),
    mustRun: true,
  };
}

/** A capability as Docker reports it back: upper case, with its `CAP_` prefix. */
export function dockerCapability(name: string): string {
  const upper = name.toUpperCase();
  return upper.startsWith("CAP_") ? upper : `CAP_${upper}`;
}

/** `docker.Volume` arguments for the description's disk volume. */
export function volumeArgs(spec: pulumi.Output<ContainerSpec>, index = 0): docker.VolumeArgs {
  const volume = spec.apply((s) => secretIf(s.volumes[index]!, s.secrets.other));
  return {
    name: volume.name,
    labels: volume.apply((v) => Object.entries(v.labels).map(([label, value]) => ({ label, value }))),
  };
}
