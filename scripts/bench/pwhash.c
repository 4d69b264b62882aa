/* The baseline for the unlock benchmark: one bare crypto_pwhash (Argon2id) with the given
 * parameters, in a process of its own, exactly what a kisvault unlock must pay at least. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc != 3 || sodium_init() < 0) {
        fprintf(stderr, "usage: pwhash OPSLIMIT MEMLIMIT\n");
        return 2;
    }
    unsigned long long ops = strtoull(argv[1], NULL, 10);
    size_t mem = strtoull(argv[2], NULL, 10);
    unsigned char salt[crypto_pwhash_SALTBYTES] = {0}, key[32];
    const char *pw = "benchmark passphrase";
    if (crypto_pwhash(key, sizeof key, pw, strlen(pw), salt, ops, mem, crypto_pwhash_ALG_ARGON2ID13) != 0) {
        fprintf(stderr, "crypto_pwhash failed\n");
        return 1;
    }
    return 0;
}
