/**
 * The guest's serial console, shared: every viewer (the Unix socket, browser terminals)
 * sees the same output and may type. A new viewer first gets the recent output, so it
 * shows the current prompt rather than a blank screen.
 */

/** How much recent output a new viewer is shown. */
export const SCROLLBACK_BYTES = 64 * 1024;

export interface SerialViewer {
  /** Receives the guest's output. */
  write(data: Buffer): void;
}

export class SerialHub {
  private readonly viewers = new Set<SerialViewer>();
  private recent: Buffer[] = [];
  private recentBytes = 0;

  /** @param input types into the guest's serial port; returns false while no guest runs. */
  constructor(private readonly input: (data: Buffer) => boolean, private readonly scrollbackBytes = SCROLLBACK_BYTES) {}

  /** Output from the guest: kept for new viewers and passed to every viewer. */
  output(data: Buffer): void {
    this.recent.push(data);
    this.recentBytes += data.length;
    while (this.recentBytes - this.recent[0]!.length >= this.scrollbackBytes) {
      this.recentBytes -= this.recent.shift()!.length;
    }
    for (const viewer of [...this.viewers]) viewer.write(data);
  }

  /** The recent output, at most the scrollback size. */
  scrollback(): Buffer {
    const all = Buffer.concat(this.recent);
    return all.length > this.scrollbackBytes ? all.subarray(all.length - this.scrollbackBytes) : all;
  }

  /** Adds a viewer, shows it the recent output, and returns the function that removes it. */
  attach(viewer: SerialViewer): () => void {
    const recent = this.scrollback();
    if (recent.length > 0) viewer.write(recent);
    this.viewers.add(viewer);
    return () => this.viewers.delete(viewer);
  }

  /** Keystrokes from a viewer. */
  type(data: Buffer): boolean {
    return data.length === 0 ? true : this.input(data);
  }

  get viewerCount(): number {
    return this.viewers.size;
  }
}
