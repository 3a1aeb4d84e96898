// What the user is offered when no `tether` executable can be found: the install command (to copy,
// or typed into a terminal for them to run), the install instructions, or picking the executable.
import * as fs from "fs";
import * as vscode from "vscode";

/** The project's repository (pyproject.toml's [project.urls] Repository; tests keep them equal). */
export const REPOSITORY_URL = "https://tether.example.invalid/source";

/** Tether is not on PyPI (`pip install tether` installs another project): from its repository. */
export const INSTALL_COMMAND = `pipx install "git+${REPOSITORY_URL}"`;

export const COPY = "Copy install command";
export const INSTRUCTIONS = "Install instructions";
export const LOCATE = "Locate tether…";
export const OPEN_TERMINAL = "Type it in a terminal";
export const RESTART = "Restart server";

let shown: Promise<void> | undefined;

export interface InstallOfferDeps {
  extensionUri: vscode.Uri;
  output: vscode.LogOutputChannel;
  restart: () => Promise<void>;
}

/**
 * One offer at a time, however many folders failed to start their server. Nothing runs without
 * the user: the command is copied, or typed into a terminal without Enter.
 */
export function offerInstall(deps: InstallOfferDeps, tried: string): Promise<void> {
  if (!shown) {
    shown = showOffer(deps, tried).finally(() => {
      shown = undefined;
    });
  }
  return shown;
}

async function showOffer(deps: InstallOfferDeps, tried: string): Promise<void> {
  deps.output.error(`tether not found. ${tried}`);
  const choice = await vscode.window.showErrorMessage(
    `Tether: the \`tether\` command is not installed (or not on PATH). Install it with ${INSTALL_COMMAND}, then restart the server.`,
    COPY,
    INSTRUCTIONS,
    LOCATE,
  );
  if (choice === COPY) {
    await vscode.env.clipboard.writeText(INSTALL_COMMAND);
    deps.output.info(`copied to the clipboard: ${INSTALL_COMMAND}`);
    const next = await vscode.window.showInformationMessage(
      `Tether: copied \`${INSTALL_COMMAND}\`. Run it in a terminal, then restart the server.`,
      OPEN_TERMINAL,
      RESTART,
    );
    if (next === OPEN_TERMINAL) {
      const term = vscode.window.createTerminal({ name: "Install Tether" });
      // Typed, not run: the user reads it and presses Enter.
      term.sendText(INSTALL_COMMAND, false);
      term.show(false);
    } else if (next === RESTART) {
      await deps.restart();
    }
  } else if (choice === INSTRUCTIONS) {
    await openInstructions(deps.extensionUri);
  } else if (choice === LOCATE) {
    await locateExecutable(deps);
  }
}

/** The README shipped in the extension (works offline): its Requirements section comes first.
 * vsce stores it as `readme.md`; a folder loaded from source has `README.md`. */
export async function openInstructions(extensionUri: vscode.Uri): Promise<void> {
  let name = "README.md";
  try {
    name = fs.readdirSync(extensionUri.fsPath).find((n) => n.toLowerCase() === "readme.md") ?? name;
  } catch {
    // a remote or virtual extension location: keep the usual name
  }
  const readme = vscode.Uri.joinPath(extensionUri, name);
  try {
    await vscode.commands.executeCommand("markdown.showPreview", readme);
  } catch {
    await vscode.window.showTextDocument(readme, { preview: true });
  }
}

async function locateExecutable(deps: InstallOfferDeps): Promise<void> {
  const picked = await vscode.window.showOpenDialog({
    title: "Tether: the tether executable (e.g. ~/.local/bin/tether)",
    canSelectFiles: true,
    canSelectFolders: false,
    canSelectMany: false,
    openLabel: "Use this tether",
  });
  const file = picked?.[0];
  if (!file) {
    return;
  }
  // A machine setting: written to the user's (or the remote's) settings, never the workspace's.
  await vscode.workspace.getConfiguration("tether").update("serverPath", file.fsPath, vscode.ConfigurationTarget.Global);
  deps.output.info(`tether.serverPath set to ${file.fsPath}`);
}
