/**
 * The terminal side of `boxvm run`'s serial console, like `qemu -nographic`: the terminal in raw
 * mode, typed bytes to the guest's UART, the guest's bytes to the terminal, and the Ctrl-A escape
 * for the VM itself (escape.ts). Works on any byte streams, so tests drive it with fakes.
 */
import { ESCAPE_HELP, EscapeFilter, type EscapeCommand } from "./escape.ts";

/** A console of the VM (VM.console(name) has this shape). */
export interface GuestConsole {
  /** Guest output; returns a function that removes the listener. */
  onData(cb: (bytes: Uint8Array) => void): () => void;
  /** Bytes for the guest. */
  write(bytes: Uint8Array): void;
}

/** The terminal: an input stream (maybe a TTY) and an output. */
export interface TerminalIO {
  input: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  output: { write(data: Uint8Array | string): unknown };
}

/** What the escape commands do (the caller talks to the VM). */
export type CommandHandler = (cmd: EscapeCommand) => void | Promise<void>;

/** Options of the terminal console. */
export interface TerminalConsoleOptions {
  /** Forward typed bytes to the guest (false when the serial port goes elsewhere). */
  forwardInput?: boolean;
  /** Forward guest output to the terminal (false when it goes elsewhere). */
  forwardOutput?: boolean;
}

/** Connects a terminal to a guest console with the Ctrl-A escape. */
export class TerminalConsole {
  readonly #io: TerminalIO;
  readonly #guest: GuestConsole;
  readonly #onCommand: CommandHandler;
  readonly #filter = new EscapeFilter();
  readonly #forwardInput: boolean;
  readonly #forwardOutput: boolean;
  #offData: (() => void) | null = null;
  #raw = false;
  #started = false;
  /** Column 0 after the last guest output? (boxvm's messages start on a fresh line.) */
  #atLineStart = true;
  readonly #onInput = (chunk: Buffer | string): void => this.#input(chunk);

  constructor(io: TerminalIO, guest: GuestConsole, onCommand: CommandHandler, opts: TerminalConsoleOptions = {}) {
    this.#io = io;
    this.#guest = guest;
    this.#onCommand = onCommand;
    this.#forwardInput = opts.forwardInput ?? true;
    this.#forwardOutput = opts.forwardOutput ?? true;
  }

  /** True when the terminal was put in raw mode. */
  get raw(): boolean {
    return this.#raw;
  }

  /** Raw mode (on a TTY), listeners on. */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    const inp = this.#io.input;
    if (inp.isTTY === true && typeof inp.setRawMode === "function") {
      inp.setRawMode(true);
      this.#raw = true;
    }
    inp.on("data", this.#onInput);
    inp.resume();
    if (this.#forwardOutput) {
      this.#offData = this.#guest.onData((b) => {
        if (b.length > 0) this.#atLineStart = b[b.length - 1] === 0x0a;
        this.#io.output.write(b);
      });
    }
  }

  /** Listeners off, the terminal back to how it was. */
  stop(): void {
    if (!this.#started) return;
    this.#started = false;
    this.#offData?.();
    this.#offData = null;
    const inp = this.#io.input;
    inp.off("data", this.#onInput);
    inp.pause();
    if (this.#raw) inp.setRawMode?.(false);
    this.#raw = false;
  }

  /** Prints a boxvm message on its own line ("\r\n" endings: the terminal may be raw). */
  message(text: string): void {
    const lines = text.split("\n").map((l) => `[boxvm] ${l}`);
    this.#io.output.write(`${this.#atLineStart ? "" : "\r\n"}${lines.join("\r\n")}\r\n`);
    this.#atLineStart = true;
  }

  /** The escape help. */
  help(): void {
    this.message(ESCAPE_HELP.join("\n"));
  }

  #input(chunk: Buffer | string): void {
    const bytes = typeof chunk === "string" ? new TextEncoder().encode(chunk) : new Uint8Array(chunk);
    for (const ev of this.#filter.push(bytes)) {
      if (ev.kind === "data") {
        if (this.#forwardInput) this.#guest.write(ev.bytes);
      } else if (ev.kind === "command") {
        if (ev.command === "help") this.help();
        else void Promise.resolve(this.#onCommand(ev.command)).catch((e: unknown) => this.message(`${(e as Error).message}`));
      } else {
        this.message(`unknown escape Ctrl-A ${JSON.stringify(String.fromCharCode(ev.key))}`);
        this.help();
      }
    }
  }
}
