/** Text as users' tools save it. */

/** The text without the UTF-8 byte-order mark some editors (Windows Notepad) put first: JSON.parse refuses it. */
export const withoutBom = (text: string): string => (text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
