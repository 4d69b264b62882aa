// libFuzzer target: the kis_devlp.yaml reader on arbitrary bytes (scripts/fuzz.sh).
import AccountFile
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzKISYAML(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var reader = AccountFileReader()
    reader.parseKISYAML(String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self), base: "kis")
    return 0
}
