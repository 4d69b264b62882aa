// libFuzzer target: the JSON account file reader on arbitrary bytes (scripts/fuzz.sh).
import AccountFile
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSON(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var reader = AccountFileReader()
    reader.parseJSON(Data(bytes: data, count: size))
    for record in reader.records { _ = record.tagList }
    return 0
}
