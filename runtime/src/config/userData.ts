/**
 * Extra user data (`USER_DATA`, `USER_DATA_FILE` or the documented file):
 * a cloud-config document, or a shell script starting with `#!`. It reaches
 * the guest as a part of its own beside the launcher's cloud-config (see
 * plan/cloudInit.ts for how cloud-init merges the two).
 *
 * The document is read the way the guest's cloud-init reads it (PyYAML's safe
 * loader, YAML 1.1), and refused here when the guest would refuse it: cloud-init
 * drops the whole user data on a YAML error, silently, so a typo would only show
 * as a guest without its packages. Messages never quote the document: it may be
 * a Pulumi secret.
 */
import { LineCounter, parseDocument, visit } from "yaml";

export type UserData = { kind: "cloud-config"; text: string } | { kind: "script"; text: string };

export type UserDataResult = { ok: true; userData: UserData } | { ok: false; problem: string };

/**
 * The tags PyYAML's SafeLoader constructs when written out (`!!str`, ...). Any other tag
 * (`!custom`, `!!python/object:...`, also `!!python/unicode` and `!!merge`) makes the
 * guest's loader fail; cloudInitMerge.test.ts checks this list against it.
 */
const SAFE_TAGS = new Set(
  ["null", "bool", "int", "float", "binary", "timestamp", "omap", "pairs", "set", "str", "seq", "map"].map(
    (name) => `tag:yaml.org,2002:${name}`,
  ),
);

/**
 * How far aliases may expand (yaml's own default): a few anchors reused are fine, an
 * "alias bomb" (each level doubling the last) is refused before it is ever expanded.
 */
const MAX_ALIAS_COUNT = 100;

const HINT = "(cloud-config YAML, or a script starting with #!)";

export function parseUserData(text: string): UserDataResult {
  if (text.startsWith("#!")) return { ok: true, userData: { kind: "script", text } };
  const lineCounter = new LineCounter();
  // YAML 1.1 and merge keys, as PyYAML reads them; duplicate keys stay an error (PyYAML would keep the last silently).
  const document = parseDocument(text, { version: "1.1", merge: true, lineCounter, prettyErrors: false });
  const at = (offset: number | undefined) => (offset === undefined ? "" : ` at line ${lineCounter.linePos(offset).line}`);
  if (document.errors.length > 0) {
    const first = document.errors[0]!;
    return { ok: false, problem: `is not valid YAML: ${first.message.split("\n")[0]!.replace(/ at line \d+.*$/, "")}${at(first.pos[0])} ${HINT}` };
  }
  let unsafeTag: { tag: string; offset: number | undefined } | undefined;
  visit(document, {
    Node(_, node) {
      if (node.tag && !SAFE_TAGS.has(node.tag) && !unsafeTag) unsafeTag = { tag: node.tag, offset: node.range?.[0] };
    },
  });
  if (unsafeTag) {
    // A tag is structure, not data; still, only a short printable one is shown.
    const shown = /^[!A-Za-z0-9:/,._-]{1,60}$/.test(unsafeTag.tag) ? ` ${unsafeTag.tag.replace(/^tag:yaml\.org,2002:/, "!!")}` : "";
    return {
      ok: false,
      problem: `uses the YAML tag${shown}${at(unsafeTag.offset)}, which cloud-init's safe YAML loader refuses (the guest would drop all user data); only YAML's standard tags such as !!str, !!int, !!binary work`,
    };
  }
  let content: unknown;
  try {
    content = document.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (error) {
    // yaml throws a ReferenceError for an alias without its anchor and for an alias bomb.
    const message = (error as Error).message;
    if (/Excessive alias count/i.test(message)) {
      return { ok: false, problem: `uses YAML aliases that expand too far (more than ${MAX_ALIAS_COUNT} expansions: an "alias bomb") ${HINT}` };
    }
    if (/Unresolved alias/i.test(message)) {
      return { ok: false, problem: `is not valid YAML: an alias (*name) refers to an anchor (&name) that is not defined before it ${HINT}` };
    }
    return { ok: false, problem: `is not valid YAML ${HINT}` };
  }
  if (content === null || typeof content !== "object" || Array.isArray(content)) {
    return { ok: false, problem: "must be a cloud-config mapping (keys such as packages, write_files, runcmd) or a script starting with #!" };
  }
  const body = text.startsWith("#cloud-config") ? text : `#cloud-config\n${text}`;
  return { ok: true, userData: { kind: "cloud-config", text: body } };
}
