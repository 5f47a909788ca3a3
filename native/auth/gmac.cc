#include "auth/gmac.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sodium.h>

#include <cstring>
#include <mutex>
#include <stdexcept>

namespace maelstrom::auth {
namespace {

static_assert(sizeof(crypto_aead_aes256gcm_state) <= 512, "Gmac::state_ holds libsodium's state");
static_assert(crypto_aead_aes256gcm_KEYBYTES == kKeyBytes && crypto_aead_aes256gcm_ABYTES == kTagBytes, "AES-256-GCM");

void nonce_of(uint64_t counter, unsigned char nonce[12]) {
  std::memset(nonce, 0, 4);
  for (int i = 0; i < 8; i++) nonce[4 + i] = uint8_t(counter >> (56 - 8 * i));
}

}  // namespace

bool crypto_ready() {
  static const bool ready = sodium_init() >= 0;
  return ready;
}

void random_bytes(void* out, size_t len) {
  if (!crypto_ready()) throw std::runtime_error("libsodium failed to initialise");
  randombytes_buf(out, len);
}

Gmac::~Gmac() {
  if (ctx_) EVP_CIPHER_CTX_free(ctx_);
  sodium_memzero(state_, sizeof state_);
}

void Gmac::init(const uint8_t key[kKeyBytes], Backend backend) {
  sodium_ = backend == Backend::Auto && crypto_ready() && crypto_aead_aes256gcm_is_available();
  if (sodium_) {
    crypto_aead_aes256gcm_beforenm(reinterpret_cast<crypto_aead_aes256gcm_state*>(state_), key);
    return;
  }
  if (!ctx_) ctx_ = EVP_CIPHER_CTX_new();
  unsigned char nonce[12] = {};
  if (!ctx_ || EVP_EncryptInit_ex(ctx_, EVP_aes_256_gcm(), nullptr, key, nonce) != 1)
    throw std::runtime_error("OpenSSL cannot set up AES-256-GCM");
}

bool Gmac::openssl_tag(const unsigned char nonce[12], const uint8_t* ad, size_t len, uint8_t out[kTagBytes]) {
  int n = 0;
  unsigned char none[1];
  return EVP_EncryptInit_ex(ctx_, nullptr, nullptr, nullptr, nonce) == 1 &&
         EVP_EncryptUpdate(ctx_, nullptr, &n, ad, int(len)) == 1 && EVP_EncryptFinal_ex(ctx_, none, &n) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_GET_TAG, int(kTagBytes), out) == 1;
}

void Gmac::tag(uint64_t counter, const uint8_t* ad, size_t len, uint8_t out[kTagBytes]) {
  unsigned char nonce[12];
  nonce_of(counter, nonce);
  if (sodium_) {
    unsigned long long tag_len = 0;
    unsigned char none[1] = {};  // no plaintext, no ciphertext: libsodium still wants the pointers
    crypto_aead_aes256gcm_encrypt_detached_afternm(none, out, &tag_len, none, 0, ad, len, nullptr, nonce,
                                                   reinterpret_cast<crypto_aead_aes256gcm_state*>(state_));
  } else if (!openssl_tag(nonce, ad, len, out)) {
    randombytes_buf(out, kTagBytes);  // verifies nowhere: the datagram is lost, never forged
  }
}

bool Gmac::verify(uint64_t counter, const uint8_t* ad, size_t len, const uint8_t tag[kTagBytes]) {
  unsigned char nonce[12];
  nonce_of(counter, nonce);
  if (sodium_) {
    unsigned char none[1] = {};
    return crypto_aead_aes256gcm_decrypt_detached_afternm(none, nullptr, none, 0, tag, ad, len, nonce,
                                                          reinterpret_cast<crypto_aead_aes256gcm_state*>(state_)) == 0;
  }
  uint8_t want[kTagBytes];
  return openssl_tag(nonce, ad, len, want) && CRYPTO_memcmp(want, tag, kTagBytes) == 0;
}

}  // namespace maelstrom::auth
