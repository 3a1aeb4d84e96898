// A minimal result tally: every runner ends with the line "N passed, N failed".
import { log } from "./env";

export class Results {
  private readonly rows: { name: string; ok: boolean; detail?: string }[] = [];

  pass(name: string): void {
    this.rows.push({ name, ok: true });
    log("PASS", name);
  }

  fail(name: string, detail: string): void {
    this.rows.push({ name, ok: false, detail });
    log("FAIL", name, "—", detail);
  }

  get passed(): number {
    return this.rows.filter((r) => r.ok).length;
  }

  get failed(): number {
    return this.rows.filter((r) => !r.ok).length;
  }

  summaryLine(): string {
    return `${this.passed} passed, ${this.failed} failed`;
  }
}
