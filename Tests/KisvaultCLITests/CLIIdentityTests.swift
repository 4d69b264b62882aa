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
}
