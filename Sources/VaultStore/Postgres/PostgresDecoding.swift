import Foundation
import NIOCore
import PostgresNIO

/// Reading PostgreSQL's binary answers straight from their bytes, where the driver's
/// generic decoding costs more than the statement (the bulk run's issuance state, account
/// listings), and the error for a column that is not what kisvault wrote.
extension PostgresRecords {
    /// A `text[]` cell, each element split at its tabs into `fields` texts: the texts of
    /// all the elements, in order; none for NULL (an aggregate that saw no rows). The
    /// array is read from PostgreSQL's binary form: the number of dimensions, a flags
    /// word, the element type, each dimension's length and lower bound, then each element
    /// as its length and its bytes (a `text`'s UTF-8). Names, tags, ids and timestamps
    /// never hold a tab, so an element with another number of fields, a NULL element or
    /// any other shape is not what kisvault wrote (`what` names an element in the error).
    static func tabbedArray(_ cell: PostgresCell, fields: Int, of what: String) throws -> [String] {
        guard var bytes = cell.bytes else { return [] }
        let notText = UnexpectedColumn(name: cell.columnName, isNull: false)
        guard cell.dataType == .textArray,
              let dimensions = bytes.readInteger(as: Int32.self), bytes.readInteger(as: Int32.self) != nil,
              bytes.readInteger(as: UInt32.self) == PostgresDataType.text.rawValue
        else { throw notText }
        if dimensions == 0 { return [] }
        guard dimensions == 1, let count = bytes.readInteger(as: Int32.self), bytes.readInteger(as: Int32.self) != nil,
              count >= 0, Int(count) <= bytes.readableBytes / 4
        else { throw notText }
        var texts: [String] = []
        texts.reserveCapacity(Int(count) * fields)
        for _ in 0..<count {
            guard let length = bytes.readInteger(as: Int32.self) else { throw notText }
            guard length >= 0 else { throw UnexpectedColumn(name: cell.columnName, isNull: true) }
            guard let element = bytes.readSlice(length: Int(length)) else { throw notText }
            let found = element.withUnsafeReadableBytes { raw in
                var found = 0
                var start = 0
                for (index, byte) in raw.enumerated() where byte == UInt8(ascii: "\t") {
                    texts.append(String(decoding: UnsafeRawBufferPointer(rebasing: raw[start..<index]), as: UTF8.self))
                    start = index + 1
                    found += 1
                }
                texts.append(String(decoding: UnsafeRawBufferPointer(rebasing: raw[start...]), as: UTF8.self))
                return found + 1
            }
            guard found == fields else {
                throw UnexpectedColumn(detail: "\(what) was read as \(found) fields, not \(fields): a name or tag holds a tab")
            }
        }
        guard bytes.readableBytes == 0 else { throw notText }
        return texts
    }

    /// The columns of a row of `text` columns, nil for NULL, read straight from their
    /// bytes (PostgreSQL's binary form of `text` is its UTF-8). The driver's generic
    /// decoding costs microseconds a row: most of the client's time reading a bulk run's
    /// issuance state.
    static func optionalTexts(_ row: PostgresRow) throws -> [String?] {
        try row.map(optionalText)
    }

    /// One cell of ``optionalTexts(_:)``.
    private static func optionalText(_ cell: PostgresCell) throws -> String? {
        guard let bytes = cell.bytes else { return nil }
        guard cell.dataType == .text || cell.dataType == .varchar else { throw UnexpectedColumn(name: cell.columnName, isNull: false) }
        return String(buffer: bytes)
    }
}

/// A value read back that is not what kisvault wrote: a column NULL or not text where
/// text was read, or a listing's aggregate of another shape (``PostgresRecords/tabbedArray(_:fields:of:)``).
struct UnexpectedColumn: Error {
    /// What was found, as a message says it ("column name is NULL").
    let detail: String

    init(name: String, isNull: Bool) {
        detail = "column \(name) is \(isNull ? "NULL" : "not text")"
    }

    init(detail: String) {
        self.detail = detail
    }
}
