// GMAC: AES-256-GCM with an empty plaintext, the tag over associated data only. libsodium's
// AES-NI implementation where the CPU has AES-NI and PCLMULQDQ (about 350 ns for a 1.6 KB
// repair here, 50 ns for a small datagram), OpenSSL's EVP everywhere else (the same tags;
// about 200 ns more per call). Not thread-safe: one per sender or receiver session.
#pragma once
#include <cstddef>
#include <cstdint>

struct evp_cipher_ctx_st;

namespace maelstrom::auth {

constexpr size_t kKeyBytes = 32;
constexpr size_t kTagBytes = 16;

class Gmac {
 public:
  enum class Backend { Auto, OpenSsl };
  Gmac() = default;
  ~Gmac();
  Gmac(const Gmac&) = delete;
  Gmac& operator=(const Gmac&) = delete;

  void init(const uint8_t key[kKeyBytes], Backend backend = Backend::Auto);
  // Nonce: 4 zero bytes, then the counter big-endian.
  void tag(uint64_t counter, const uint8_t* ad, size_t len, uint8_t out[kTagBytes]);
  bool verify(uint64_t counter, const uint8_t* ad, size_t len, const uint8_t tag[kTagBytes]);
  bool accelerated() const { return sodium_; }

 private:
  bool openssl_tag(const unsigned char nonce[12], const uint8_t* ad, size_t len, uint8_t out[kTagBytes]);

  alignas(16) unsigned char state_[512];  // crypto_aead_aes256gcm_state
  bool sodium_ = false;
  evp_cipher_ctx_st* ctx_ = nullptr;
};

// libsodium's sodium_init(), once; false if it failed.
bool crypto_ready();
// Fills `out` from the system's CSPRNG.
void random_bytes(void* out, size_t len);

}  // namespace maelstrom::auth
