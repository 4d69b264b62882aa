import Foundation
import NetworkRules
#if canImport(Glibc)
import Glibc
#endif

/// Where a team vault is: a `postgres://` or `postgresql://` URL.
///
/// `postgres://USER@HOST:PORT/DATABASE?schema=kisvault&sslmode=require&sslrootcert=FILE`;
/// HOST may be a Unix-socket directory, percent-encoded (`%2Frun%2Fpostgresql`) or given
/// as `?host=/run/postgresql`. The password never comes from the URL (it would be in argv
/// or the environment of every process): `PGPASSWORD`, else the file named by
/// `KISVAULT_PG_PASSWORD_FILE`, else `~/.pgpass` (libpq's format and permission rule).
public struct PostgresLocation: Sendable, Equatable {
    public enum TLSMode: String, Sendable { case disable, require, verifyFull = "verify-full" }

    public var host: String
    /// The socket directory when `host` is one (starts with `/`).
    public var isUnixSocket: Bool { host.hasPrefix("/") }
    public var port: Int
    public var user: String
    public var database: String
    public var schema: String
    public var tls: TLSMode
    public var rootCertificate: String?
    /// The URL as given, for messages (it holds no password: one is refused).
    public var text: String

    /// Whether `text` names a PostgreSQL vault rather than a file.
    public static func isURL(_ text: String) -> Bool {
        text.hasPrefix("postgres://") || text.hasPrefix("postgresql://")
    }

    /// - Throws: ``VaultError/invalidLocation(_:reason:)`` for anything kisvault will not use.
    public init(_ text: String, env: [String: String] = ProcessInfo.processInfo.environment) throws(VaultError) {
        self.text = text
        guard Self.isURL(text), let components = URLComponents(string: text) else {
            throw .invalidLocation(text, reason: "not a postgres:// URL")
        }
        if components.password != nil {
            throw .invalidLocation(Self.redacted(text), reason: "the URL holds a password; give it in PGPASSWORD, KISVAULT_PG_PASSWORD_FILE or ~/.pgpass instead, never on a command line")
        }
        var query: [String: String] = [:]
        for item in components.queryItems ?? [] {
            guard query[item.name] == nil else { throw .invalidLocation(text, reason: "'\(item.name)' is given twice") }
            query[item.name] = item.value ?? ""
        }
        let known: Set<String> = ["schema", "sslmode", "sslrootcert", "host", "port", "user"]
        if let unknown = query.keys.sorted().first(where: { !known.contains($0) }) {
            throw .invalidLocation(text, reason: "unknown parameter '\(unknown)' (kisvault takes schema, sslmode, sslrootcert, host, port, user)")
        }
        let host = query["host"] ?? components.percentEncodedHost.flatMap { $0.removingPercentEncoding } ?? ""
        guard !host.isEmpty else { throw .invalidLocation(text, reason: "no host (for a Unix socket: ?host=/run/postgresql)") }
        self.host = host
        let portText = query["port"] ?? components.port.map(String.init) ?? "5432"
        guard let port = Int(portText), (1...65_535).contains(port) else { throw .invalidLocation(text, reason: "the port '\(portText)' is not 1 to 65535") }
        self.port = port
        let user = query["user"] ?? components.user ?? env["PGUSER"] ?? currentUserName()
        guard !user.isEmpty else { throw .invalidLocation(text, reason: "no user") }
        self.user = user
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        let database = path.removingPercentEncoding ?? path
        guard !database.isEmpty, !database.contains("/") else { throw .invalidLocation(text, reason: "no database name (postgres://USER@HOST/DATABASE)") }
        self.database = database
        let schema = query["schema"] ?? "kisvault"
        guard Self.isPlainIdentifier(schema) else {
            throw .invalidLocation(text, reason: "the schema '\(schema)' must be 1 to 63 of a-z, 0-9 and _, not starting with a digit")
        }
        self.schema = schema
        guard let tls = TLSMode(rawValue: query["sslmode"] ?? (host.hasPrefix("/") || Self.isLoopbackName(host) ? "disable" : "verify-full")) else {
            throw .invalidLocation(text, reason: "sslmode must be disable, require or verify-full")
        }
        if tls == .disable, !host.hasPrefix("/"), !Self.isLoopbackName(host) {
            throw .invalidLocation(text, reason: "sslmode=disable to \(host): the database's traffic would cross the network in clear; use sslmode=require or verify-full")
        }
        self.tls = tls
        rootCertificate = query["sslrootcert"]
    }

    /// A name for the database that never shows a password (there is none to show: a URL
    /// with one is refused; this also covers the refusal's own message).
    static func redacted(_ text: String) -> String {
        URLText.redacted(text)
    }

    static func isPlainIdentifier(_ text: String) -> Bool {
        guard let first = text.utf8.first, !(48...57).contains(first), text.utf8.count <= 63 else { return false }
        return text.utf8.allSatisfy { (97...122).contains($0) || (48...57).contains($0) || $0 == 95 }
    }

    /// This machine by address (``Loopback/isLoopback(host:)``): a literal loopback
    /// address, or `localhost` resolving only to loopback. `127.evil.example` is a name.
    static func isLoopbackName(_ host: String) -> Bool { Loopback.isLoopback(host: host) }

    /// The password, from the first source that has one; nil when none does (trust or
    /// peer authentication needs none).
    /// - Throws: ``VaultError/invalidLocation(_:reason:)`` for a password file that cannot
    ///   be read.
    func password(env: [String: String] = ProcessInfo.processInfo.environment) throws(VaultError) -> String? {
        if let password = env["PGPASSWORD"], !password.isEmpty { return password }
        if let file = env["KISVAULT_PG_PASSWORD_FILE"], !file.isEmpty {
            guard let data = FileManager.default.contents(atPath: file), data.count <= 4096,
                  let line = String(data: data, encoding: .utf8)?.split(whereSeparator: \.isNewline).first.map(String.init), !line.isEmpty else {
                throw .invalidLocation(text, reason: "KISVAULT_PG_PASSWORD_FILE \(file) cannot be read, or its first line is empty")
            }
            return line
        }
        let pgpass = env["PGPASSFILE"] ?? (env["HOME"] ?? NSHomeDirectory()) + "/.pgpass"
        return Self.pgpassEntry(file: pgpass, host: isUnixSocket ? "localhost" : host, port: port, database: database, user: user)
    }

    /// The password of the first matching line of a `.pgpass` file
    /// (`hostname:port:database:username:password`, `*` matching anything, `\:` and `\\`
    /// escaped), as libpq reads it: a file others can read is ignored.
    static func pgpassEntry(file: String, host: String, port: Int, database: String, user: String) -> String? {
        var info = stat()
        guard stat(file, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, info.st_mode & 0o077 == 0, info.st_size <= 1 << 20,
              let text = try? String(contentsOfFile: file, encoding: .utf8) else { return nil }
        for line in text.split(whereSeparator: \.isNewline) where !line.hasPrefix("#") {
            var fields: [String] = [], field = "", escaped = false
            for c in line {
                if escaped { field.append(c); escaped = false }
                else if c == "\\" { escaped = true }
                else if c == ":" && fields.count < 4 { fields.append(field); field = "" }
                else { field.append(c) }
            }
            fields.append(field)
            guard fields.count == 5 else { continue }
            let wanted = [host, String(port), database, user]
            if zip(fields.prefix(4), wanted).allSatisfy({ $0 == "*" || $0 == $1 }) { return fields[4] }
        }
        return nil
    }
}
