import GRDB

enum GRDBHelper {
    static func queue(_ path: String) throws -> DatabaseQueue { try DatabaseQueue(path: path) }
}
