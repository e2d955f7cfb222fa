/** Keeping secret what holds a secret, and only that, on the way from the description to the engine. */
import * as pulumi from "@pulumi/pulumi";
import type { ContainerSpec } from "./description.js";

/** The value as an output, secret when `secret` says so. */
export function secretIf<T>(value: T, secret: boolean): pulumi.Output<T> {
  return (secret ? pulumi.secret(value) : pulumi.output(value)) as pulumi.Output<T>;
}

/** The description holds a secret: a secret file, or a secret setting in the environment or elsewhere. */
export function holdsSecrets(spec: ContainerSpec): boolean {
  return spec.secrets.env || spec.secrets.other || spec.files.some((file) => file.secret);
}

/** The names of the arguments that hold a Pulumi secret anywhere inside them (also nested, e.g. `users[0].password`). */
export function secretArguments(args: object): pulumi.Output<string[]> {
  const checks = Object.entries(args).map(async ([key, value]) => ((await pulumi.isSecret(pulumi.output(value))) ? [key] : []));
  return pulumi.output(Promise.all(checks).then((keys) => keys.flat()));
}
