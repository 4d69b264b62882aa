import Foundation
import Testing

/// `kisvault identity` through the built binary (issue 23, identities): a machine
/// identity written 0600 and never replaced, a person's sealed under a passphrase, the
/// recipient printed by both commands alike, and the files refused that must be.
@Suite struct CLIIdentityTests {
    static func recipientLine(_ text: String) -> Bool {
        text.hasPrefix("kisvault1") && text.count == "kisvault1".count + 58 + 1 && text.hasSuffix("\n")
    }

    @Test func aMachineIdentityIsA0600FileThatIsNeverReplaced() throws {
        let box = CLISandbox()
        let path = box.dir + "/bot.identity"
        let made = try box.run(["identity", "new", "--no-passphrase", "--output", path], env: ["KISVAULT_PASSPHRASE": nil])
        #expect(made.status == 0 && Self.recipientLine(made.stdout), "\(made.stderr)")
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let file = try String(contentsOfFile: path, encoding: .utf8)
        // The secret is the file's one non-comment line; nothing of it reached the output.
        let secret = try #require(file.split(separator: "\n").first { $0.hasPrefix("KISVAULT-IDENTITY-1 ") }).split(separator: " ")[1]
        #expect(!made.stdout.contains(secret) && !made.stderr.contains(secret))
        let shown = try box.run(["identity", "recipient", path])
        #expect(shown.status == 0 && shown.stdout == made.stdout)
        let again = try box.run(["identity", "new", "--no-passphrase", "--output", path])
        #expect(again.status == 2 && again.stderr.contains("never replaces an identity"))
        #expect(try String(contentsOfFile: path, encoding: .utf8) == file)
        // Readable by others: refused, as ssh refuses such a key.
        chmod(path, 0o644)
        let loose = try box.run(["identity", "recipient", path])
        #expect(loose.status == 2 && loose.stderr.contains("chmod 600"), "\(loose.stderr)")
    }

    @Test func aPersonsIdentityOpensWithItsPassphraseOnly() throws {
        let box = CLISandbox()
        try "identity passphrase\n".write(toFile: box.dir + "/pw", atomically: true, encoding: .utf8)
        try "not it\n".write(toFile: box.dir + "/wrong", atomically: true, encoding: .utf8)
        // The default place: $XDG_CONFIG_HOME/kisvault/identity, its directory made 0700.
        let env: [String: String?] = ["XDG_CONFIG_HOME": box.dir + "/config"]
        let made = try box.run(["identity", "new", "--new-passphrase-file", box.dir + "/pw", "--kdf", "insecure-test"], env: env)
        #expect(made.status == 0 && Self.recipientLine(made.stdout), "\(made.stderr)")
        let path = box.dir + "/config/kisvault/identity"
        #expect(try String(contentsOfFile: path, encoding: .utf8).contains("KISVAULT-IDENTITY-1-PASSPHRASE "))
        #expect((try FileManager.default.attributesOfItem(atPath: box.dir + "/config/kisvault")[.posixPermissions] as? Int) == 0o700)
        let shown = try box.run(["identity", "recipient", "--passphrase-file", box.dir + "/pw"], env: env)
        #expect(shown.status == 0 && shown.stdout == made.stdout, "\(shown.stderr)")
        let viaEnvironment = try box.run(["identity", "recipient", "--passphrase-file", box.dir + "/pw"], env: ["KISVAULT_IDENTITY": path])
        #expect(viaEnvironment.stdout == made.stdout)
        let wrong = try box.run(["identity", "recipient", path, "--passphrase-file", box.dir + "/wrong"])
        #expect(wrong.status == 3 && wrong.stdout.isEmpty && wrong.stderr.contains("does not open this identity"))
    }

    @Test func whatIsNotAnIdentityIsRefusedByName() throws {
        let box = CLISandbox()
        let missing = try box.run(["identity", "recipient", box.dir + "/none"])
        #expect(missing.status == 4 && missing.stderr.contains("cannot read the identity"))
        try "just text\n".write(toFile: box.dir + "/text", atomically: true, encoding: .utf8)
        let text = try box.run(["identity", "recipient", box.dir + "/text"])
        #expect(text.status == 2 && text.stderr.contains("not a kisvault identity file"))
        try String(repeating: "#", count: 5000).write(toFile: box.dir + "/big", atomically: true, encoding: .utf8)
        let big = try box.run(["identity", "recipient", box.dir + "/big"])
        #expect(big.status == 2 && big.stderr.contains("larger than an identity file"))
        // A FIFO in its place is refused at once, not waited on.
        #expect(mkfifo(box.dir + "/fifo", 0o600) == 0)
        let fifo = try box.run(["identity", "recipient", box.dir + "/fifo"], timeout: 20)
        #expect(fifo.status == 2 && fifo.stderr.contains("not a regular file"), "\(fifo.stderr)")
        let both = try box.run(["identity", "new", "--no-passphrase", "--new-passphrase-file", box.dir + "/text", "--output", box.dir + "/x"])
        #expect(both.status == 2 && !FileManager.default.fileExists(atPath: box.dir + "/x"))
    }

    /// docs/FORMAT.md's "Identity files" is enough to open one: PyNaCl (another binding of
    /// libsodium, from PyPI into a throwaway virtualenv) reads a sealed and a machine
    /// identity from the spec alone and computes the same recipient kisvault printed.
    static let reader = """
        import base64, hashlib, sys
        from nacl import pwhash, secret, public
        path, passphrase = sys.argv[1], sys.argv[2].encode()
        line = next(l for l in open(path).read().splitlines() if l and not l.startswith("#"))
        tag, payload = line.split(" ")
        payload = base64.b64decode(payload)
        if tag == "KISVAULT-IDENTITY-1-PASSPHRASE":
            ops, mem = int.from_bytes(payload[:8], "little"), int.from_bytes(payload[8:16], "little")
            key = pwhash.argon2id.kdf(32, passphrase, payload[16:32], opslimit=ops, memlimit=mem)
            sk = secret.SecretBox(key).decrypt(payload[32:])
        else:
            assert tag == "KISVAULT-IDENTITY-1"
            sk = payload
        pk = bytes(public.PrivateKey(sk).public_key)
        check = hashlib.blake2b(b"kisvault recipient v1" + pk, digest_size=32).digest()[:4]
        print("kisvault1" + base64.b32encode(pk + check).decode().lower().rstrip("="))
        """

    @Test(.enabled("PyPI is unreachable, and PyNaCl comes from there (set KISVAULT_REQUIRE_PYPI=1 to fail instead)", { CLIClientCacheTests.pypiReachable() }))
    func anIdentityFileOpensFromTheSpecAlone() async throws {
        let box = CLISandbox()
        let venv = box.dir + "/venv"
        let made = try await box.runAsync(["-m", "venv", venv], tool: "", wrapper: ["/usr/bin/env", "python3"], timeout: 120)
        try #require(made.status == 0, "python3 -m venv: \(made.stderr)")
        let installed = try await box.runAsync(["install", "--quiet", "--disable-pip-version-check", "pynacl==1.5.0"],
                                               tool: "", wrapper: [venv + "/bin/pip"], timeout: 600)
        try #require(installed.status == 0, "pip install pynacl: \(installed.stderr)")
        let script = box.write("reader.py", Self.reader)
        let passphrase = "an identity passphrase"
        let sealed = try await box.runAsync(["identity", "new", "--output", box.dir + "/me.identity", "--kdf", "insecure-test",
                                             "--new-passphrase-file", box.write("pw", passphrase + "\n")])
        let machine = try await box.runAsync(["identity", "new", "--no-passphrase", "--output", box.dir + "/bot.identity"])
        for (made, file) in [(sealed, "/me.identity"), (machine, "/bot.identity")] {
            #expect(made.status == 0, "\(made.stderr)")
            let read = try await box.runAsync([script, box.dir + file, passphrase], tool: "", wrapper: [venv + "/bin/python"], timeout: 120)
            #expect(read.status == 0 && read.stdout == made.stdout, "\(file): \(read.stdout) \(read.stderr)")
        }
    }
}
