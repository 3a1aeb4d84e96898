// Entry point loaded by the extension host (extensionTestsPath). Runs mocha in-process and prints
// a marker line that the runner (run-host-tests.ts) reads from the browser console.
import Mocha from "mocha";
import { defineExtensionTests } from "./extension.test";
import { definePureTests } from "./pure.test";

export function run(): Promise<void> {
  const mocha = new Mocha({ ui: "bdd", timeout: 30_000, color: false, reporter: "spec" });
  mocha.suite.emit("pre-require", globalThis, "inline", mocha);
  definePureTests();
  defineExtensionTests();
  return new Promise((resolve, reject) => {
    const runner = mocha.run((failures) => {
      console.log(`TETHER-HOST-TESTS-DONE passed=${runner.stats?.passes ?? 0} failed=${failures}`);
      if (failures) {
        reject(new Error(`${failures} tests failed`));
      } else {
        resolve();
      }
    });
  });
}
