/**
 * The container description as `@pulumi/docker` arguments. Secret files stay
 * secret on the way: the spec itself is computed from unsecreted inputs (so
 * that names, ports and labels are readable in previews) and the parts that
 * carry secrets are marked secret again here.
 */
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { envList, type ContainerSpec } from "./spec.js";

function secretIf<T>(value: T, secret: boolean): pulumi.Output<T> {
  return (secret ? pulumi.secret(value) : pulumi.output(value)) as pulumi.Output<T>;
}

/** `docker.Container` arguments for a container description. */
export function containerArgs(spec: pulumi.Output<ContainerSpec>): docker.ContainerArgs {
  return {
    name: spec.name,
    image: spec.image,
    hostname: spec.hostname,
    envs: spec.apply((s) => envList(s.env)),
    uploads: spec.apply((s) =>
      secretIf(
        s.files.map((file) => ({ file: file.path, content: file.content, permissions: file.mode })),
        s.files.some((file) => file.secret),
      ),
    ),
    devices: spec.apply((s) => s.devices.map((path) => ({ hostPath: path, containerPath: path, permissions: "rwm" }))),
    capabilities: spec.apply((s) => ({ adds: s.capAdd })),
    ports: spec.apply((s) =>
      s.ports.map((port) => ({
        internal: port.containerPort,
        protocol: port.protocol,
        ...(port.hostPort !== undefined && { external: port.hostPort }),
        ...(port.hostIp !== undefined && { ip: port.hostIp }),
      })),
    ),
    volumes: spec.apply((s) => s.volumes.map((volume) => ({ volumeName: volume.name, containerPath: volume.containerPath }))),
    labels: spec.apply((s) => Object.entries(s.labels).map(([label, value]) => ({ label, value }))),
    // No `healthcheck`: the image's HEALTHCHECK is inherited. With `wait`, `pulumi up` returns
    // once it reports healthy (SSH answers, cloud-init done), not when QEMU starts.
    wait: true,
    waitTimeout: spec.readyTimeoutSeconds,
    stopSignal: spec.stopSignal,
    stopTimeout: spec.stopTimeoutSeconds,
    // Same patience on `pulumi destroy`: the guest shuts down cleanly instead of losing its disk's last writes.
    destroyGraceSeconds: spec.stopTimeoutSeconds,
    restart: spec.restart,
    networksAdvanced: spec.apply((s) => s.networks.map((network) => ({ name: network.name, aliases: network.aliases }))),
    mustRun: true,
  };
}

/** `docker.Volume` arguments for the description's disk volume. */
export function volumeArgs(spec: pulumi.Output<ContainerSpec>, index = 0): docker.VolumeArgs {
  const volume = spec.apply((s) => s.volumes[index]!);
  return {
    name: volume.name,
    labels: volume.apply((v) => Object.entries(v.labels).map(([label, value]) => ({ label, value }))),
  };
}
