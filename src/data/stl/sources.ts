// Where the released STL files live. Kept apart from the fetch code so `ctl --help` does not load an HTTP client.
export const STL_BASE_URL = 'https://raw.githubusercontent.com/kang205/STL-Dataset/master';
