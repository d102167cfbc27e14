#include "common/strings.h"

#include <string>

#include "gtest/gtest.h"

namespace microlend {
namespace {

TEST(AppendJsonString, EscapesQuotesBackslashesAndControlCharactersOnly) {
  std::string out = "x=";
  AppendJsonString(&out, std::string("a\"b\\c\n\t\r\x01\x1f caf\xc3\xa9 \0", 18));
  EXPECT_EQ(out, "x=\"a\\\"b\\\\c\\u000a\\u0009\\u000d\\u0001\\u001f caf\xc3\xa9 \\u0000\"");
  std::string empty;
  AppendJsonString(&empty, "");
  EXPECT_EQ(empty, "\"\"");
}

TEST(IsStorableText, AcceptsAsciiAndWellFormedMultibyte) {
  EXPECT_TRUE(IsStorableText(""));
  EXPECT_TRUE(IsStorableText("plain ascii, with punctuation!"));
  EXPECT_TRUE(IsStorableText("caf\xc3\xa9"));                // 2 bytes
  EXPECT_TRUE(IsStorableText("\xe3\x81\x82"));               // 3 bytes
  EXPECT_TRUE(IsStorableText("\xf0\x9f\x92\xb8 money"));     // 4 bytes
}

TEST(IsStorableText, RejectsNulBytes) {
  EXPECT_FALSE(IsStorableText(std::string("a\0b", 3)));
}

TEST(IsStorableText, RejectsMalformedUtf8) {
  EXPECT_FALSE(IsStorableText("\xff"));                 // never valid
  EXPECT_FALSE(IsStorableText("\xe3\x81"));             // truncated at the end
  EXPECT_FALSE(IsStorableText("\xe3\x41\x82"));         // bad continuation
  EXPECT_FALSE(IsStorableText("\xc0\xaf"));             // overlong '/'
  EXPECT_FALSE(IsStorableText("\xed\xa0\x80"));         // UTF-16 surrogate
  EXPECT_FALSE(IsStorableText("\xf4\x90\x80\x80"));     // beyond U+10FFFF
  EXPECT_FALSE(IsStorableText("\x80 lone continuation"));
}

}  // namespace
}  // namespace microlend
