#include "core/common/quoted_input.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace biserve {
namespace {

// Every character is printable ASCII (so the text is valid UTF-8 and
// safe in a grpc-message header).
bool PrintableAscii(const std::string& text) {
  for (char c : text) {
    if (!absl::ascii_isprint(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

TEST(QuotedInputTest, ShortPlainTextIsQuotedAsItIs) {
  EXPECT_EQ(QuotedInput("brackets"), "'brackets'");
  EXPECT_EQ(QuotedInput(""), "''");
  EXPECT_EQ(QuotedInput("initial_state/bi/forward_h"),
            "'initial_state/bi/forward_h'");
}

TEST(QuotedInputTest, QuotesBackslashesAndControlCharactersAreEscaped) {
  EXPECT_EQ(QuotedInput("it's"), "'it\\'s'");
  EXPECT_EQ(QuotedInput("a\\b"), "'a\\\\b'");
  EXPECT_EQ(QuotedInput("line\nbreak\ttab\r"), "'line\\nbreak\\ttab\\r'");
  EXPECT_EQ(QuotedInput(std::string("nul\0zone", 8)), "'nul\\x00zone'");
  // A hex digit right after a \x escape is escaped too, so that no reader
  // takes it for part of the escape.
  EXPECT_EQ(QuotedInput(std::string("nul\0byte", 8)), "'nul\\x00\\x62yte'");
  EXPECT_EQ(QuotedInput("\x1b[31mred"), "'\\x1b[31mred'");
}

TEST(QuotedInputTest, BytesOutsideAsciiAreEscapedSoTheResultIsValidUtf8) {
  // Invalid UTF-8: a lone continuation byte, a truncated sequence, 0xff.
  const std::string invalid = "a\x80z\xc3\xff";
  const std::string quoted = QuotedInput(invalid);
  EXPECT_EQ(quoted, "'a\\x80z\\xc3\\xff'");
  EXPECT_TRUE(PrintableAscii(quoted));
  // Valid UTF-8 is escaped too: the message stays plain ASCII.
  EXPECT_EQ(QuotedInput("caf\xc3\xa9"), "'caf\\xc3\\xa9'");
}

TEST(QuotedInputTest, LongTextIsCutWithItsSizeShown) {
  const std::string name(100000, 'a');
  const std::string quoted = QuotedInput(name);
  EXPECT_EQ(quoted, absl::StrCat("'", std::string(kQuotedInputMaxBytes, 'a'),
                                 "'... (100000 bytes)"));
  EXPECT_LE(quoted.size(), 4 * kQuotedInputMaxBytes + 30);
}

TEST(QuotedInputTest, TextOfExactlyTheLimitIsNotCut) {
  const std::string name(kQuotedInputMaxBytes, 'b');
  EXPECT_EQ(QuotedInput(name), absl::StrCat("'", name, "'"));
  EXPECT_THAT(QuotedInput(name + "c"), ::testing::EndsWith("'... (101 bytes)"));
}

TEST(QuotedInputTest, WorstCaseStaysBoundedAndPrintable) {
  // Every byte needs a four-character escape; a cut through a multi-byte
  // character leaves only escapes behind, never half a character.
  std::string hostile;
  for (int i = 0; i < 5000; ++i) hostile.push_back(static_cast<char>(i));
  const std::string quoted = QuotedInput(hostile);
  EXPECT_TRUE(PrintableAscii(quoted));
  EXPECT_LE(quoted.size(), 4 * kQuotedInputMaxBytes + 30);
  EXPECT_THAT(quoted, ::testing::EndsWith("... (5000 bytes)"));
  std::string cut_in_a_character(kQuotedInputMaxBytes - 1, 'x');
  cut_in_a_character += "\xe6\xa8\xa1";
  EXPECT_TRUE(PrintableAscii(QuotedInput(cut_in_a_character)));
  EXPECT_THAT(QuotedInput(cut_in_a_character),
              ::testing::EndsWith("x\\xe6'... (102 bytes)"));
}

TEST(QuotedInputTest, ShorterLimit) {
  EXPECT_EQ(QuotedInput("abcdef", 3), "'abc'... (6 bytes)");
}

}  // namespace
}  // namespace biserve
