import Foundation
import KISAPI
import KisvaultAgent
import VaultStore

/// The CLI's use of a running agent: when `KISVAULT_AGENT_SOCK` is set or the default
/// socket answers, and the agent serves the same vault file, requests go to it and no
/// passphrase is asked. A locked or absent agent means: unlock here instead.
enum AgentUse {
    enum Outcome {
        /// The agent answered with a JSON object.
        case answered([String: Any])
        /// The agent refused; the error is final (exit code from the agent's error code).
        case failed(AgentCallError)
        /// No usable agent: do the work locally.
        case unavailable
    }

    static func call(_ target: String, method: String = "GET", body: [UInt8] = [], vaultPath: String, options: VaultOptions) -> Outcome {
        let (socket, explicit) = AgentPaths.socket()
        guard explicit || FileManager.default.fileExists(atPath: socket) else { return .unavailable }
        // A KIS URL this command cannot use is reported by the command itself, never
        // papered over by an agent that has URLs of its own.
        guard let mine = try? KISEndpoints.fromEnvironment() else { return .unavailable }
        let response: AgentClient.Response
        do {
            // The command's own KIS URLs go with the request: an agent aimed at other hosts
            // refuses before doing anything (kis_urls_differ).
            let headers = ["x-kisvault-kis-real": mine.real, "x-kisvault-kis-mock": mine.mock]
            response = try AgentClient.request(socket: socket, method: method, target: target, headers: headers, body: body)
        } catch {
            options.debug("agent at \(socket) unusable (\(error)); unlocking here")
            return .unavailable
        }
        guard let served = response.headers["x-kisvault-vault"], sameFile(served, vaultPath) else {
            options.debug("the agent at \(socket) serves another vault; unlocking here")
            return .unavailable
        }
        // An agent started for other KIS hosts (KIS's real ones, while this command is
        // pointed at a kis-mock, or the reverse) must not answer for this command.
        if response.headers["x-kisvault-kis-real"] != mine.real || response.headers["x-kisvault-kis-mock"] != mine.mock {
            options.debug("the agent at \(socket) talks to other KIS URLs (\(response.headers["x-kisvault-kis-real"] ?? "?"), \(response.headers["x-kisvault-kis-mock"] ?? "?")) than this command (\(mine.real), \(mine.mock)); unlocking here")
            return .unavailable
        }
        let body = response.json ?? [:]
        if response.status == 200 { return .answered(body) }
        let code = (body["error"] as? String).flatMap(ErrorCode.init(rawValue:)) ?? .vaultError
        switch code {
        case .locked, .vaultChanged, .kisURLsDiffer:
            options.debug("the agent answered \(code.rawValue); unlocking here")
            return .unavailable
        default:
            return .failed(AgentCallError(code: code, message: Terminal.escape(body["message"] as? String ?? "the agent refused (HTTP \(response.status))")))
        }
    }

    static func sameFile(_ a: String, _ b: String) -> Bool {
        var sa = stat(), sb = stat()
        guard stat(a, &sa) == 0, stat(b, &sb) == 0 else { return a == b }
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino
    }
}

/// An error the agent answered with: its stable code, typed, and its message.
struct AgentCallError: Error, CustomStringConvertible {
    var code: ErrorCode
    var message: String
    var description: String { message }
}
