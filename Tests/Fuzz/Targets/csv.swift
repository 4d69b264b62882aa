// libFuzzer target: the CSV account file reader on arbitrary bytes (scripts/fuzz.sh).
import AccountFile
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCSV(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var reader = AccountFileReader()
    reader.parseCSV(String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self))
    for record in reader.records { _ = record.tagList }
    return 0
}
