/** Pulumi mocks that record every resource, and fill in what Docker would (ids, published ports, network data). */
import * as pulumi from "@pulumi/pulumi";

export interface Recorded {
  type: string;
  name: string;
  inputs: Record<string, any>;
  provider?: string;
}

export const recorded: Recorded[] = [];

/** The signature key and value of Pulumi's secret envelope, as the mock monitor receives secret inputs. */
export const SECRET_SIG = "4dabf18193072939515e22adb298388d";
export const SECRET_VALUE = "1b47061264138c4ac30d75fd1eb44270";

function unsecretInput(input: any): any {
  return input && typeof input === "object" && input[SECRET_SIG] === SECRET_VALUE ? input.value : input;
}
let nextPort = 32768;

pulumi.runtime.setMocks(
  {
    newResource(args) {
      recorded.push({ type: args.type, name: args.name, inputs: args.inputs, ...(args.provider && { provider: args.provider }) });
      const state: Record<string, any> = { ...args.inputs };
      if (args.type === "docker:index/container:Container") {
        // Docker picks a free host port when none is given.
        // Inputs that were secret arrive in Pulumi's secret envelope; Docker sees the values inside.
        state.ports = (unsecretInput(args.inputs.ports) ?? []).map((port: any) => ({ ...port, external: port.external ?? nextPort++ }));
        state.networkDatas = [{ networkName: unsecretInput(args.inputs.networksAdvanced)?.[0]?.name ?? "bridge", ipAddress: `172.30.0.${recorded.length}` }];
      }
      if (args.type === "random:index/randomPassword:RandomPassword") {
        // What @pulumi/random would generate: `length` letters and digits, different per resource.
        const seed = `${args.name}-0123456789abcdefghijklmnopqrstuvwxyz`.replace(/[^A-Za-z0-9]/g, "");
        state.result = seed.repeat(4).slice(0, Number(args.inputs.length));
      }
      return { id: `${args.name}-id`, state };
    },
    call(args) {
      return args.inputs;
    },
  },
  "devmachines",
  "test",
  false,
);

/** The value of an output (mocks resolve everything). */
export function value<T>(output: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => output.apply(resolve));
}

export function resourcesOf(type: string, namePrefix = ""): Recorded[] {
  return recorded.filter((r) => r.type === type && r.name.startsWith(namePrefix));
}

/** A valid OpenSSH public key for tests. */
export const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGgu9sEgnjUjo1EI1Wh0tQDeWEY9RkRfCkKOdbVH0K4c test@devmachines";
