/** Figures and tables the benchmarks print (scripts/bench*.ts): one format for every table in docs/benchmarks.md. */

export const f1 = (n: number) => n.toFixed(1);
export const ratio = (subject: number, baseline: number) => `${(subject / baseline).toFixed(2)}x`;
export const seconds = (since: number) => (Date.now() - since) / 1000;
/** The middle value (the upper of the two middle ones for an even count). */
export const median = (list: number[]) => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)]!;

/** A Markdown table, then a blank line. */
export function table(head: string[], rows: (string | number)[][]): void {
  console.log(`| ${head.join(" | ")} |\n|${head.map(() => "---").join("|")}|`);
  for (const row of rows) console.log(`| ${row.join(" | ")} |`);
  console.log("");
}
