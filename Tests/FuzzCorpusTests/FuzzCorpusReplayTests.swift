import AccountFile
import Foundation
import KISAPI
import Testing

/// Replays the corpus `make fuzz` kept (Tests/Fuzz/corpus) through the same parsers,
/// uninstrumented: every input a fuzzer found interesting still parses to records or
/// problems, and what would reach a terminal is clean.
@Suite struct FuzzCorpusReplayTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz/corpus")

    static func inputs(_ target: String) throws -> [(String, Data)] {
        let directory = corpus.appendingPathComponent(target)
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        return try names.map { ($0, try Data(contentsOf: directory.appendingPathComponent($0))) }
    }

    static func isClean(_ text: String) -> Bool {
        !text.unicodeScalars.contains { $0.value < 0x20 || (0x7f...0x9f).contains($0.value) }
    }

    @Test(arguments: ["csv", "json", "kis_yaml"])
    func accountFiles(target: String) throws {
        let inputs = try Self.inputs(target)
        #expect(inputs.count >= 2, "the corpus of \(target) is missing")
        for (name, data) in inputs {
            var reader = AccountFileReader()
            switch target {
            case "csv": reader.parseCSV(String(decoding: data, as: UTF8.self))
            case "json": reader.parseJSON(data)
            default: reader.parseKISYAML(String(decoding: data, as: UTF8.self), base: "kis")
            }
            // Every record has a place; every problem a place and a reason.
            #expect(reader.records.allSatisfy { !$0.location.isEmpty }, "\(target)/\(name)")
            #expect(reader.problems.allSatisfy { !$0.location.isEmpty && !$0.reason.isEmpty }, "\(target)/\(name)")
        }
    }

    @Test func kisWebSocketAnswers() throws {
        let inputs = try Self.inputs("kis_ws_answer")
        #expect(inputs.count >= 5)
        for (name, data) in inputs {
            if case .rejected(let code, let message) = KISWebSocketAnswer.outcome(of: String(decoding: data, as: UTF8.self)) {
                #expect(code == "malformed" || KISShapes.isCode(code), "\(name)")
                #expect(Self.isClean(message) && message.count <= KISShapes.maxMessage + 1, "\(name)")
            }
        }
        #expect(KISWebSocketAnswer.outcome(of: String(decoding: try #require(inputs.first { $0.0 == "seed-ok" }?.1), as: UTF8.self)) == .ok)
    }

    @Test func kisResponses() throws {
        let inputs = try Self.inputs("kis_response")
        #expect(inputs.count >= 5)
        let statuses = [200, 200, 403, 500, 502, 201, 404, 200]
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        for (name, data) in inputs where !data.isEmpty {
            let selector = data[data.startIndex]
            do {
                let object = try KISResponse.decode(status: statuses[Int(selector & 7)], body: data.dropFirst(), path: "/oauth2/tokenP")
                if selector & 8 == 0 {
                    #expect(KISShapes.isAccessToken(try KISResponse.accessToken(from: object, now: now).token), "\(name)")
                } else {
                    #expect(KISShapes.isApprovalKey(try KISResponse.approvalKey(from: object, now: now).key), "\(name)")
                }
            } catch {
                #expect(Self.isClean(error.message) && error.message.count < 1000, "\(name): \(error)")
                #expect(error.code.map(KISShapes.isCode) ?? true, "\(name)")
            }
        }
    }
}
