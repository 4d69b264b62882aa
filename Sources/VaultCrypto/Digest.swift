import CSodium
import Foundation

/// Unkeyed digests other programs name their files with. Nothing of kisvault's own security
/// rests on them: PyKis names its token file after a SHA-1, kis-trader after a SHA-256, and
/// kisvault has to write the same names.
public enum Digest {
    /// SHA-256 (libsodium's `crypto_hash_sha256`) of `message`, in lowercase hex.
    public static func sha256Hex(_ message: some ContiguousBytes) -> String {
        Sodium.ready()
        var out = [UInt8](repeating: 0, count: 32)
        message.withUnsafeBytes { m in
            out.withUnsafeMutableBytes { o in
                _ = crypto_hash_sha256(o.bindMemory(to: UInt8.self).baseAddress!, m.bindMemory(to: UInt8.self).baseAddress, UInt64(m.count))
            }
        }
        return hexString(out)
    }

    /// SHA-1 (FIPS 180-4) of `message`, in lowercase hex. libsodium has none; this is the
    /// textbook algorithm, checked against the standard's test vectors.
    public static func sha1Hex(_ message: some ContiguousBytes) -> String {
        var bytes = message.withUnsafeBytes { Array($0) }
        defer { bytes.withUnsafeMutableBytes { sodium_memzero($0.baseAddress, $0.count) } }
        let bitLength = UInt64(bytes.count) * 8
        bytes.append(0x80)
        while bytes.count % 64 != 56 { bytes.append(0) }
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: bitLength >> UInt64(shift))) }
        var h: [UInt32] = [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0]
        var w = [UInt32](repeating: 0, count: 80)
        for block in stride(from: 0, to: bytes.count, by: 64) {
            for i in 0..<16 {
                let j = block + 4 * i
                w[i] = UInt32(bytes[j]) << 24 | UInt32(bytes[j + 1]) << 16 | UInt32(bytes[j + 2]) << 8 | UInt32(bytes[j + 3])
            }
            for i in 16..<80 { w[i] = rotate(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1) }
            var (a, b, c, d, e) = (h[0], h[1], h[2], h[3], h[4])
            for i in 0..<80 {
                let (f, k): (UInt32, UInt32) = switch i {
                case 0..<20: ((b & c) | (~b & d), 0x5A82_7999)
                case 20..<40: (b ^ c ^ d, 0x6ED9_EBA1)
                case 40..<60: ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC)
                default: (b ^ c ^ d, 0xCA62_C1D6)
                }
                let t = rotate(a, 5) &+ f &+ e &+ k &+ w[i]
                (e, d, c, b, a) = (d, c, rotate(b, 30), a, t)
            }
            h[0] &+= a; h[1] &+= b; h[2] &+= c; h[3] &+= d; h[4] &+= e
        }
        w.withUnsafeMutableBytes { sodium_memzero($0.baseAddress, $0.count) }
        return hexString(h.flatMap { word in [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: word >> UInt32($0)) } })
    }

    private static func rotate(_ x: UInt32, _ n: UInt32) -> UInt32 { x << n | x >> (32 - n) }
}
