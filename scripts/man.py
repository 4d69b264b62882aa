#!/usr/bin/env python3
"""Renders kisvault(1), the man page, from the command tree the binary describes itself
(`kisvault --experimental-dump-help`, argument-parser's JSON), so it cannot drift from
the help: NAME, SYNOPSIS, DESCRIPTION, every command with its options, EXIT STATUS, FILES,
ENVIRONMENT, SEE ALSO.

Usage: python3 scripts/man.py KISVAULT_BINARY > kisvault.1   (make man)
"""
import datetime, json, subprocess, sys

tree = json.loads(subprocess.run([sys.argv[1], "--experimental-dump-help"], capture_output=True, check=True).stdout)["command"]


def roff(text):
    """Text as roff: backslashes and leading dots or quotes made literal."""
    out = []
    for line in (text or "").replace("\\", "\\e").split("\n"):
        out.append("\\&" + line if line[:1] in (".", "'") else line)
    return "\n".join(out)


def prose(text):
    """A discussion: paragraphs filled, indented lines (examples, tables) kept as written."""
    for block in (text or "").split("\n\n"):
        lines = block.split("\n")
        print(".PP")
        for index, line in enumerate(lines):
            if line.startswith(" "):
                print(".nf")
                print(roff(line))
                print(".fi")
            else:
                print(roff(line))


def flag(arg):
    names = [("-" if n["kind"] == "short" else "--") + n["name"] for n in arg.get("names", [])]
    if arg["kind"] == "positional":
        return "<" + arg.get("valueName", "value") + ">" + (" ..." if arg.get("isRepeating") else "")
    text = ", ".join(names)
    if arg["kind"] == "option":
        text += " <" + arg.get("valueName", "value") + ">"
    return text


def command(node, path):
    name = " ".join(path)
    print(".SS " + roff(name))
    print(roff(node.get("abstract", "")))
    if node.get("discussion"):
        prose(node["discussion"])
    for arg in node.get("arguments", []):
        if not arg.get("shouldDisplay", True) or arg.get("names", [{}])[0].get("name") in ("help", "version"):
            continue
        print(".TP")
        print("\\fB" + roff(flag(arg)) + "\\fR")
        default = arg.get("defaultValue")
        print(roff(arg.get("abstract", "")) + (" (default: " + roff(default) + ")" if default and arg["kind"] != "flag" else ""))
    for sub in node.get("subcommands", []):
        if sub.get("shouldDisplay", True) and sub["commandName"] != "help":
            command(sub, path + [sub["commandName"]])


today = datetime.date.today().isoformat()
print('.TH KISVAULT 1 "%s" "kisvault" "User Commands"' % today)
print(".SH NAME")
print("kisvault \\- " + roff(tree["abstract"]))
print(".SH SYNOPSIS")
print("\\fBkisvault\\fR \\fIcommand\\fR [\\fIoptions\\fR]")
print(".SH DESCRIPTION")
prose(tree.get("discussion", ""))
print(".SH COMMANDS")
for sub in tree.get("subcommands", []):
    if sub.get("shouldDisplay", True) and sub["commandName"] != "help":
        command(sub, ["kisvault", sub["commandName"]])
print(".SH EXIT STATUS")
print("0 success; 1 vault damaged, busy, read-only or I/O failure; 2 usage or bad input; 3 wrong passphrase or locked; "
      "4 not found; 5 KIS rejected the credentials; 6 network or KIS unavailable; 7 partial failure of a bulk run.")
print(".SH ENVIRONMENT")
print(".TP\n\\fBKISVAULT_PATH\\fR\nThe vault: a file or a postgres:// URL.")
print(".TP\n\\fBKISVAULT_AGENT_SOCK\\fR\nThe agent's socket.")
print(".TP\n\\fBKISVAULT_KIS_BASE_URL\\fR, \\fBKISVAULT_KIS_REAL_URL\\fR, \\fBKISVAULT_KIS_MOCK_URL\\fR, \\fBKISVAULT_KIS_WS_URL\\fR\n"
      "KIS's hosts (http:// and ws:// only to loopback), for kis-mock.")
print(".TP\n\\fBNO_COLOR\\fR\nNo colour in any output.")
print(".SH FILES")
print("$XDG_DATA_HOME/kisvault/vault.db (the default vault), $XDG_RUNTIME_DIR/kisvault/agent.sock (the agent).")
print(".SH SEE ALSO")
print("The project's docs/CLI.md, docs/SECURITY.md, docs/FORMAT.md and docs/INTEGRATIONS.md.")
