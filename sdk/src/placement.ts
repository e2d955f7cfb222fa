/**
 * Where the machines of a group go, as a pure function the component and the
 * conformance tests share.
 *
 * Rule: machine i (in the order of `machines`, or 0..count-1) goes to host
 * i mod N (round robin over `hosts`), unless it pins a host by name or index.
 * A field set on a machine replaces the template's field as a whole (lists
 * such as `ports` or `labels` are not merged).
 */
import type * as pulumi from "@pulumi/pulumi";
import type { DevMachineGroupArgs, DockerHostArgs, MachineOverrideArgs, MachineSettingsArgs } from "./args.js";
import type { ContainerSpec, MachineSettings, SpecContext } from "./description.js";
import { containerSpec } from "./spec/containerSpec.js";

export interface PlacedMachine {
  /** The machine's name inside the group (`web`, or `0`, `1`, ... with `count`). */
  name: string;
  /** Resource and container name: `<group>-<name>`. */
  fullName: string;
  hostIndex: number;
  hostName: string;
  /** Template merged with the machine's overrides. */
  settings: MachineSettingsArgs;
}

/** The host names of a group: `hosts[i].name`, or `host<i>`; one `local` host without `hosts`. */
export function hostNames(hosts: DockerHostArgs[] | undefined, providerCount = 0): string[] {
  if (hosts?.length) return hosts.map((host, index) => host.name ?? `host${index}`);
  if (providerCount > 0) return Array.from({ length: providerCount }, (_, index) => `host${index}`);
  return ["local"];
}

export function placeMachines(group: string, args: DevMachineGroupArgs, hosts: string[]): PlacedMachine[] {
  if (hosts.length === 0) throw new Error(`DevMachineGroup "${group}": no Docker hosts to place machines on`);
  const count = args.count ?? 1;
  if (args.machines === undefined && (!Number.isInteger(count) || count < 0)) {
    throw new Error(`DevMachineGroup "${group}": count must be a whole number, at least 0 (is ${count})`);
  }
  const machines: MachineOverrideArgs[] = args.machines ?? Array.from({ length: count }, (_, index) => ({ name: String(index) }));
  const seen = new Set<string>();
  const placed = machines.map((machine, index) => {
    const { name, host, ...overrides } = machine;
    if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(name)) {
      throw new Error(`DevMachineGroup "${group}": machine name "${name}" must start with a letter or digit and hold only letters, digits, _ . -`);
    }
    if (seen.has(name)) throw new Error(`DevMachineGroup "${group}": machine name "${name}" is used twice`);
    seen.add(name);
    let hostIndex = index % hosts.length;
    if (host !== undefined) {
      hostIndex = hosts.indexOf(host);
      if (hostIndex < 0 && /^\d+$/.test(host) && Number(host) < hosts.length) hostIndex = Number(host);
      if (hostIndex < 0) {
        throw new Error(`DevMachineGroup "${group}": machine "${name}" pins host "${host}", which is not one of ${hosts.join(", ")}`);
      }
    }
    const settings: MachineSettingsArgs = { ...args.template };
    for (const [key, value] of Object.entries(overrides)) {
      if (value !== undefined) (settings as Record<string, unknown>)[key] = value;
    }
    return { name, fullName: `${group}-${name}`, hostIndex, hostName: hosts[hostIndex]!, settings };
  });
  checkHostPorts(group, placed);
  return placed;
}

/**
 * Two machines on one Docker host cannot publish the same host port: Docker would refuse the
 * second container halfway through an update. Ports known at plan time are checked here, so
 * `pulumi preview` fails before anything is created.
 */
function checkHostPorts(group: string, placed: PlacedMachine[]): void {
  const used = new Map<string, string>();
  for (const machine of placed) {
    const { sshPort, ports } = machine.settings;
    const published: Array<[string, unknown, unknown]> = [["sshPort", sshPort, "tcp"]];
    if (Array.isArray(ports)) {
      ports.forEach((port, index) => {
        if (port && typeof port === "object" && "hostPort" in port) published.push([`ports[${index}].hostPort`, port.hostPort, port.protocol ?? "tcp"]);
      });
    }
    for (const [argument, port, protocol] of published) {
      if (typeof port !== "number" || typeof protocol !== "string") continue;
      const key = `${machine.hostIndex}/${port}/${protocol}`;
      const other = used.get(key);
      if (other !== undefined) {
        throw new Error(`DevMachineGroup "${group}": machine "${machine.name}" ${argument}: host port ${port}/${protocol} is taken by ` +
          `machine "${other}" on host "${machine.hostName}" (machines on one Docker host need different host ports)`);
      }
      used.set(key, machine.name);
    }
  }
}

/** The address users reach a Docker host at: the host of an ssh:// or tcp:// URL, 127.0.0.1 for local sockets. */
export function sshHostOf(host: DockerHostArgs): string {
  if (host.sshHost) return host.sshHost;
  const match = /^(?:ssh|tcp|http|https):\/\/(?:[^@/]*@)?(\[[^\]]+\]|[^:/]+)/.exec(host.host);
  return match ? match[1]!.replace(/^\[|\]$/g, "") : "127.0.0.1";
}

/** A placed machine with the container description the group deploys for it. */
export interface PlacedSpec {
  machine: PlacedMachine;
  spec: ContainerSpec;
}

/**
 * The container descriptions of a group with plain settings: what `DevMachineGroup` deploys
 * (private network named after the group, each host's SSH address), as plain data to run
 * elsewhere, e.g. with `runContainerSpec` on each host.
 */
export function groupContainerSpecs(group: string, args: DevMachineGroupArgs, hosts: string[] = hostNames(args.hosts)): PlacedSpec[] {
  return placeMachines(group, args, hosts).map((machine) => {
    const { settings, context } = groupMachine(group, args, machine);
    return { machine, spec: containerSpec(machine.fullName, settings as MachineSettings, context) };
  });
}

/**
 * What a group deploys for a placed machine: its settings with the group's additions
 * (`groupMachineSettings`, with the private network named after the group, as the
 * component names it) and its placement labels and aliases. `DevMachineGroup` and
 * `groupContainerSpecs` both build the description from exactly this.
 */
export function groupMachine(group: string, args: DevMachineGroupArgs, machine: PlacedMachine): { settings: MachineSettingsArgs; context: SpecContext } {
  const privateNetwork = (args.privateNetwork ?? true) ? group : undefined;
  return { settings: groupMachineSettings(args, machine, privateNetwork), context: placementContext(group, machine) };
}

/**
 * A placed machine's settings with what the group adds, unless the machine sets it itself:
 * the group's private network (`privateNetwork`, undefined without one) and the SSH address
 * of the host it was placed on. `DevMachineGroup` and `groupContainerSpecs` both use this.
 */
export function groupMachineSettings(
  args: DevMachineGroupArgs,
  machine: PlacedMachine,
  privateNetwork: pulumi.Input<string> | undefined,
): MachineSettingsArgs {
  const host = args.hosts?.[machine.hostIndex];
  const sshHost = host && sshHostOf(host);
  return {
    ...machine.settings,
    ...(privateNetwork !== undefined && machine.settings.dockerNetwork === undefined && { dockerNetwork: privateNetwork }),
    ...(sshHost !== undefined && machine.settings.sshHost === undefined && { sshHost }),
  };
}

/** The labels and network aliases a group gives a machine. */
export function placementContext(group: string, machine: PlacedMachine): SpecContext {
  return { group, hostName: machine.hostName, aliases: [machine.name] };
}
