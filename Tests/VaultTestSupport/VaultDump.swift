import Foundation
import GRDB
import VaultCrypto

/// Every row of every table of a vault file, blobs in hex: equal dumps mean equal vault
/// contents. Shared by the store tests and the end-to-end tests that assert "the vault is
/// unchanged".
public enum VaultDump {
    public static func rows(_ path: String) throws -> String {
        var config = Configuration()
        config.readonly = true
        let db = try DatabaseQueue(path: path, configuration: config)
        defer { try? db.close() }
        return try db.read { db in
            var out = ""
            for table in try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name") {
                out += "## \(table)\n"
                for row in try Row.fetchAll(db, sql: "SELECT * FROM \"\(table)\"") {
                    out += row.databaseValues.map { value -> String in
                        if case .blob(let data) = value.storage { return hexString(data) }
                        return value.description
                    }.joined(separator: "|") + "\n"
                }
            }
            return out
        }
    }
}
